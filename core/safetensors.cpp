#include "core/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>

#include "core/error.h"
#include "core/json.h"

namespace twinfer {

namespace {
// The reference implementation refuses headers above 100 MB (a DoS guard).
constexpr uint64_t kMaxHeader = 100'000'000;
}  // namespace

// ---- MappedFile --------------------------------------------------------------------------------

MappedFile::MappedFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw ConfigError(path + ": cannot open: " + std::strerror(errno));
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw ConfigError(path + ": not a regular file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      throw ConfigError(path + ": mmap failed: " + std::strerror(err));
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

// ---- parsing -----------------------------------------------------------------------------------

size_t safetensors_dtype_size(std::string_view d) {
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
  if (d == "I8" || d == "U8" || d == "BOOL" || d == "F8_E4M3" || d == "F8_E5M2") return 1;
  return 0;
}

int64_t SafetensorsTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

const SafetensorsTensor* SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  auto file = std::make_shared<MappedFile>(path);
  SafetensorsFile f = parse(file->bytes(), path);
  f.file_ = std::move(file);
  return f;
}

SafetensorsFile SafetensorsFile::parse(std::span<const uint8_t> bytes, const std::string& name) {
  auto fail = [&](const std::string& msg) -> ConfigError {
    return ConfigError(name + ": invalid safetensors file: " + msg);
  };
  if (bytes.size() < 8)
    throw fail("file is " + std::to_string(bytes.size()) + " bytes, expected at least 8 (header length)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[static_cast<size_t>(i)];
  if (n > kMaxHeader)
    throw fail("header length " + std::to_string(n) + " exceeds the 100000000-byte limit");
  if (n > bytes.size() - 8)
    throw fail("header length " + std::to_string(n) + " runs past the end of the file (" +
               std::to_string(bytes.size()) + " bytes)");
  std::string_view text(reinterpret_cast<const char*>(bytes.data() + 8), n);
  if (text.empty() || text[0] != '{') throw fail("header does not start with '{'");

  Json header;
  try {
    header = Json::parse(text, name + " (header)");
  } catch (const JsonError& e) {
    throw fail(std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) throw fail("header is not a JSON object");

  SafetensorsFile f;
  f.name_ = name;
  const std::span<const uint8_t> buffer = bytes.subspan(8 + n);
  struct Entry {
    uint64_t begin, end;
    size_t index;
  };
  std::vector<Entry> order;
  for (const auto& [key, value] : header.as_object()) {
    if (key == "__metadata__") {
      if (!value.is_object()) throw fail("__metadata__ must be an object of strings");
      for (const auto& [mk, mv] : value.as_object()) {
        if (!mv.is_string()) throw fail("__metadata__." + mk + " must be a string");
        f.metadata_[mk] = mv.as_string();
      }
      continue;
    }
    const std::string& tname = key;  // structured bindings cannot be captured before clang 16
    auto tfail = [&](const std::string& msg) { return fail("tensor '" + tname + "': " + msg); };
    if (!value.is_object()) throw tfail("entry must be an object");
    const Json* dt = value.get("dtype");
    const Json* sh = value.get("shape");
    const Json* off = value.get("data_offsets");
    if (dt == nullptr || !dt->is_string()) throw tfail("missing string field 'dtype'");
    if (sh == nullptr || !sh->is_array()) throw tfail("missing array field 'shape'");
    if (off == nullptr || !off->is_array() || off->as_array().size() != 2)
      throw tfail("'data_offsets' must be an array [begin, end]");
    for (const auto& [fk, fv] : value.as_object())
      if (fk != "dtype" && fk != "shape" && fk != "data_offsets")
        throw tfail("unknown field '" + fk + "'");
    SafetensorsTensor t;
    t.name = key;
    t.dtype = dt->as_string();
    size_t esize = safetensors_dtype_size(t.dtype);
    if (esize == 0) throw tfail("unknown dtype '" + t.dtype + "'");
    // Element count with an overflow guard: no valid tensor can exceed the buffer.
    uint64_t numel = 1;
    bool overflow = false;
    for (const Json& d : sh->as_array()) {
      if (!d.is_number() || d.as_number() < 0 || d.as_number() != std::floor(d.as_number()) ||
          d.as_number() > 9.0e15)
        throw tfail("shape entries must be non-negative integers");
      uint64_t dim = static_cast<uint64_t>(d.as_number());
      t.shape.push_back(static_cast<int64_t>(dim));
      if (dim != 0 && numel > (UINT64_MAX / esize) / dim) overflow = true;
      numel *= dim;
    }
    if (overflow) throw tfail("shape overflows the byte count");
    uint64_t off_v[2];
    for (int i = 0; i < 2; ++i) {
      const Json& o = off->as_array()[static_cast<size_t>(i)];
      if (!o.is_number() || o.as_number() < 0 || o.as_number() != std::floor(o.as_number()) ||
          o.as_number() > 9.0e15)
        throw tfail("data_offsets must be non-negative integers");
      off_v[i] = static_cast<uint64_t>(o.as_number());
    }
    if (off_v[1] < off_v[0])
      throw tfail("data_offsets end " + std::to_string(off_v[1]) + " < begin " +
                  std::to_string(off_v[0]));
    if (off_v[1] - off_v[0] != numel * esize)
      throw tfail("data_offsets span " + std::to_string(off_v[1] - off_v[0]) +
                  " bytes, expected " + std::to_string(numel * esize) + " for dtype " + t.dtype +
                  " and its shape");
    if (off_v[1] > buffer.size())
      throw tfail("data_offsets end " + std::to_string(off_v[1]) + " is past the data buffer (" +
                  std::to_string(buffer.size()) + " bytes)");
    t.data = buffer.subspan(off_v[0], off_v[1] - off_v[0]);
    order.push_back({off_v[0], off_v[1], f.tensors_.size()});
    f.tensors_.push_back(std::move(t));
  }

  // Contiguity: sorted by begin, each tensor starts where the previous ended.
  std::sort(order.begin(), order.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t pos = 0;
  for (const Entry& e : order) {
    if (e.begin != pos)
      throw fail("tensor '" + f.tensors_[e.index].name + "' starts at offset " +
                 std::to_string(e.begin) + ", expected " + std::to_string(pos) +
                 " (tensors must be contiguous)");
    pos = e.end;
  }
  if (pos != buffer.size())
    throw fail("data buffer is " + std::to_string(buffer.size()) + " bytes but tensors cover " +
               std::to_string(pos) + " (truncated or trailing bytes)");

  std::vector<SafetensorsTensor> sorted;
  sorted.reserve(order.size());
  for (const Entry& e : order) sorted.push_back(std::move(f.tensors_[e.index]));
  f.tensors_ = std::move(sorted);
  for (size_t i = 0; i < f.tensors_.size(); ++i) f.index_[f.tensors_[i].name] = i;
  return f;
}

// ---- writing -----------------------------------------------------------------------------------

namespace {
uint64_t tensor_bytes(const SafetensorsTensorData& t) {
  uint64_t numel = 1;
  for (int64_t d : t.shape) numel *= static_cast<uint64_t>(d);
  return numel * safetensors_dtype_size(t.dtype);
}
}  // namespace

void write_safetensors_streamed(
    const std::string& path, std::span<const SafetensorsTensorData> tensors,
    const std::function<void(size_t, std::vector<uint8_t>&)>& produce,
    const std::map<std::string, std::string>& metadata) {
  Json header = Json::object();
  if (!metadata.empty()) {
    Json meta = Json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = std::move(meta);
  }
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    if (safetensors_dtype_size(t.dtype) == 0)
      throw ConfigError(path + ": tensor '" + t.name + "' has unknown dtype '" + t.dtype + "'");
    Json shape = Json::array();
    for (int64_t d : t.shape) shape.push_back(Json(d));
    Json entry = Json::object();
    entry["dtype"] = t.dtype;
    entry["shape"] = std::move(shape);
    Json offs = Json::array();
    offs.push_back(Json(offset));
    offs.push_back(Json(offset + tensor_bytes(t)));
    entry["data_offsets"] = std::move(offs);
    header[t.name] = std::move(entry);
    offset += tensor_bytes(t);
  }
  std::string text = header.dump();
  // Pad with spaces to an 8-byte boundary so the data buffer is aligned, as the reference does.
  while ((text.size() + 8) % 8 != 0) text.push_back(' ');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw ConfigError(path + ": cannot open for writing");
  uint8_t len[8];
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  out.write(reinterpret_cast<const char*>(len), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  std::vector<uint8_t> buf;
  for (size_t i = 0; i < tensors.size(); ++i) {
    buf.clear();
    produce(i, buf);
    if (buf.size() != tensor_bytes(tensors[i]))
      throw ConfigError(path + ": tensor '" + tensors[i].name + "' has " +
                        std::to_string(buf.size()) + " bytes, expected " +
                        std::to_string(tensor_bytes(tensors[i])) + " for dtype " +
                        tensors[i].dtype + " and its shape");
    out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(buf.size()));
  }
  if (!out.flush()) throw ConfigError(path + ": write failed");
}

void write_safetensors(const std::string& path, std::span<const SafetensorsTensorData> tensors,
                       const std::map<std::string, std::string>& metadata) {
  write_safetensors_streamed(
      path, tensors,
      [&](size_t i, std::vector<uint8_t>& buf) {
        buf.assign(tensors[i].data.begin(), tensors[i].data.end());
      },
      metadata);
}

// ---- 16-bit floats -----------------------------------------------------------------------------

uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t u;
  if (exp == 0x1f) {
    u = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    u = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    u = sign;
  } else {  // subnormal: value = mant * 2^-24
    float v = std::ldexp(static_cast<float>(mant), -24);
    std::memcpy(&u, &v, 4);
    u |= sign;
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to >= 65520
  if (abs < 0x38800000u) {  // below the smallest normal half: subnormal or zero
    float a;
    std::memcpy(&a, &abs, 4);
    // nearbyint rounds half to even in the default mode.
    return static_cast<uint16_t>(sign | static_cast<uint16_t>(std::nearbyint(a * 16777216.0f)));
  }
  uint32_t exp = (abs >> 23) - 112;
  uint32_t mant = abs & 0x7fffffu;
  uint32_t h = (exp << 10) | (mant >> 13);
  uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

}  // namespace twinfer
