#include "core/gguf.h"

#include <cstring>

#include "core/error.h"
#include "core/safetensors.h"

namespace twinfer {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr int kMaxDims = 4;              // GGML_MAX_DIMS

struct TypeInfo {
  uint32_t id;
  const char* name;
  int64_t block_elems, block_bytes;
  bool dequant;  // this reader converts it to fp32
};
// Layouts from ggml's type traits, so files holding other types still validate.
constexpr TypeInfo kTypes[] = {
    {0, "F32", 1, 4, true},      {1, "F16", 1, 2, true},      {2, "Q4_0", 32, 18, true},
    {3, "Q4_1", 32, 20, true},   {6, "Q5_0", 32, 22, false},  {7, "Q5_1", 32, 24, false},
    {8, "Q8_0", 32, 34, true},   {9, "Q8_1", 32, 36, false},  {10, "Q2_K", 256, 84, false},
    {11, "Q3_K", 256, 110, false}, {12, "Q4_K", 256, 144, false}, {13, "Q5_K", 256, 176, false},
    {14, "Q6_K", 256, 210, false}, {15, "Q8_K", 256, 292, false}, {24, "I8", 1, 1, false},
    {25, "I16", 1, 2, false},    {26, "I32", 1, 4, false},    {27, "I64", 1, 8, false},
    {28, "F64", 1, 8, false},    {30, "BF16", 1, 2, true},
};

const TypeInfo* type_info(uint32_t t) {
  for (const auto& ti : kTypes)
    if (ti.id == t) return &ti;
  return nullptr;
}

// Bounds-checked little-endian cursor; errors name the file and what was being read.
struct Reader {
  std::span<const uint8_t> b;
  const std::string& name;
  size_t pos = 0;

  [[noreturn]] void fail(const std::string& msg) const {
    throw ConfigError(name + ": invalid GGUF file at byte " + std::to_string(pos) + ": " + msg);
  }
  size_t left() const { return b.size() - pos; }
  template <class T>
  T read(const char* what) {
    if (left() < sizeof(T))
      fail(std::string("truncated while reading ") + what);
    T v;
    std::memcpy(&v, b.data() + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  std::string str(const char* what) {
    const auto n = read<uint64_t>(what);
    if (n > left()) fail(std::string(what) + " length " + std::to_string(n) + " runs past the end");
    std::string s(reinterpret_cast<const char*>(b.data() + pos), n);
    pos += n;
    return s;
  }
};

size_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::u8: case GgufType::i8: case GgufType::boolean: return 1;
    case GgufType::u16: case GgufType::i16: return 2;
    case GgufType::u32: case GgufType::i32: case GgufType::f32: return 4;
    case GgufType::u64: case GgufType::i64: case GgufType::f64: return 8;
    default: return 0;
  }
}

// Reads one scalar of type t into v (integers in i/u, floats in f, bool in b and i).
void read_scalar(Reader& r, GgufType t, GgufValue& v, const std::string& key) {
  switch (t) {
    case GgufType::u8: v.i = r.read<uint8_t>("u8"); break;
    case GgufType::i8: v.i = r.read<int8_t>("i8"); break;
    case GgufType::u16: v.i = r.read<uint16_t>("u16"); break;
    case GgufType::i16: v.i = r.read<int16_t>("i16"); break;
    case GgufType::u32: v.i = r.read<uint32_t>("u32"); break;
    case GgufType::i32: v.i = r.read<int32_t>("i32"); break;
    case GgufType::i64: v.i = r.read<int64_t>("i64"); break;
    case GgufType::u64: {
      v.u = r.read<uint64_t>("u64");
      v.i = static_cast<int64_t>(v.u);
      return;
    }
    case GgufType::f32: v.f = r.read<float>("f32"); return;
    case GgufType::f64: v.f = r.read<double>("f64"); return;
    case GgufType::boolean: {
      const auto x = r.read<uint8_t>("bool");
      if (x > 1) r.fail("metadata '" + key + "': bool value " + std::to_string(x) + ", expected 0 or 1");
      v.b = x != 0;
      v.i = x;
      return;
    }
    default: r.fail("metadata '" + key + "': not a scalar type");
  }
  v.u = static_cast<uint64_t>(v.i);
}

void read_value(Reader& r, GgufType t, GgufValue& v, const std::string& key, int depth) {
  v.type = t;
  if (t == GgufType::string) {
    v.s = r.str("string value");
    return;
  }
  if (t != GgufType::array) {
    if (scalar_size(t) == 0)
      r.fail("metadata '" + key + "' has unknown value type " + std::to_string(static_cast<uint32_t>(t)));
    read_scalar(r, t, v, key);
    return;
  }
  if (depth > 8) r.fail("metadata '" + key + "': arrays nested deeper than 8");
  v.elem_type = static_cast<GgufType>(r.read<uint32_t>("array type"));
  v.count = r.read<uint64_t>("array length");
  // Each element takes at least one byte (8 for strings and arrays), so a count larger than the
  // rest of the file is corrupt; checking first keeps reserve() bounded.
  const size_t min_elem = scalar_size(v.elem_type) ? scalar_size(v.elem_type) : 8;
  if (v.count > r.left() / min_elem)
    r.fail("metadata '" + key + "': array of " + std::to_string(v.count) +
           " elements runs past the end");
  const auto n = static_cast<size_t>(v.count);
  if (v.elem_type == GgufType::string) {
    v.strs.reserve(n);
    for (size_t k = 0; k < n; ++k) v.strs.push_back(r.str("array string"));
  } else if (v.elem_type == GgufType::array) {
    GgufValue inner;
    for (size_t k = 0; k < n; ++k) read_value(r, GgufType::array, inner, key, depth + 1);
  } else if (scalar_size(v.elem_type) == 0) {
    r.fail("metadata '" + key + "' has unknown array element type " +
           std::to_string(static_cast<uint32_t>(v.elem_type)));
  } else {
    const bool is_float = v.elem_type == GgufType::f32 || v.elem_type == GgufType::f64;
    (is_float ? v.floats.reserve(n) : v.ints.reserve(n));
    GgufValue e;
    for (size_t k = 0; k < n; ++k) {
      read_scalar(r, v.elem_type, e, key);
      if (is_float) v.floats.push_back(e.f);
      else v.ints.push_back(e.i);
    }
  }
}

}  // namespace

std::string_view ggml_type_name(uint32_t t) {
  if (const TypeInfo* ti = type_info(t)) return ti->name;
  static thread_local std::string s;
  s = "type " + std::to_string(t);
  return s;
}

bool ggml_block_layout(uint32_t t, int64_t& block_elems, int64_t& block_bytes) {
  const TypeInfo* ti = type_info(t);
  if (ti == nullptr || !ti->dequant) return false;
  block_elems = ti->block_elems;
  block_bytes = ti->block_bytes;
  return true;
}

int64_t GgufTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

GgufFile GgufFile::open(const std::string& path) {
  auto file = std::make_shared<MappedFile>(path);
  GgufFile f = parse(file->bytes(), path);
  f.file_ = std::move(file);
  return f;
}

GgufFile GgufFile::parse(std::span<const uint8_t> bytes, const std::string& name) {
  GgufFile f;
  f.name_ = name;
  Reader r{bytes, name};
  if (r.read<uint32_t>("magic") != kMagic) r.fail("magic is not \"GGUF\"");
  f.version_ = r.read<uint32_t>("version");
  if (f.version_ != 2 && f.version_ != 3)
    r.fail("version " + std::to_string(f.version_) +
           (f.version_ > 0xffff ? " (a big-endian file?)" : "") + ", expected 2 or 3");
  const auto n_tensors = r.read<uint64_t>("tensor count");
  const auto n_kv = r.read<uint64_t>("metadata count");
  // Smallest metadata entry is 13 bytes, smallest tensor info 24: reject impossible counts.
  if (n_kv > r.left() / 13) r.fail("metadata count " + std::to_string(n_kv) + " exceeds the file");
  if (n_tensors > r.left() / 24) r.fail("tensor count " + std::to_string(n_tensors) + " exceeds the file");

  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = r.str("metadata key");
    const auto t = static_cast<GgufType>(r.read<uint32_t>("value type"));
    GgufValue v;
    read_value(r, t, v, key, 0);
    if (f.kv_.count(key)) r.fail("duplicate metadata key '" + key + "'");
    f.kv_.emplace(std::move(key), std::move(v));
  }
  if (const GgufValue* a = f.find("general.alignment")) {
    if (a->type != GgufType::u32 || a->i == 0 || (a->i & (a->i - 1)) != 0)
      r.fail("general.alignment must be a u32 power of two, got " + std::to_string(a->i));
    f.alignment_ = static_cast<uint64_t>(a->i);
  }

  f.tensors_.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensor t;
    t.name = r.str("tensor name");
    const auto nd = r.read<uint32_t>("tensor dims");
    if (nd == 0 || nd > kMaxDims)
      r.fail("tensor '" + t.name + "' has " + std::to_string(nd) + " dims, expected 1 to 4");
    int64_t numel = 1;
    for (uint32_t d = 0; d < nd; ++d) {
      const auto dim = r.read<uint64_t>("tensor dim");
      if (dim > static_cast<uint64_t>(INT64_MAX) || (dim != 0 && numel > INT64_MAX / static_cast<int64_t>(dim)))
        r.fail("tensor '" + t.name + "' dims overflow");
      numel *= static_cast<int64_t>(dim);
      t.dims.push_back(static_cast<int64_t>(dim));
    }
    t.type = r.read<uint32_t>("tensor type");
    t.offset = r.read<uint64_t>("tensor offset");
    if (type_info(t.type) == nullptr)
      r.fail("tensor '" + t.name + "' has unknown ggml type " + std::to_string(t.type));
    if (f.index_.count(t.name)) r.fail("duplicate tensor '" + t.name + "'");
    f.index_[t.name] = f.tensors_.size();
    f.tensors_.push_back(std::move(t));
  }

  // The data section starts at the next alignment boundary; tensors follow each other in
  // order, each padded to the alignment, as ggml's reader requires.
  const uint64_t data_start = (r.pos + f.alignment_ - 1) / f.alignment_ * f.alignment_;
  if (data_start > bytes.size() && !f.tensors_.empty())
    r.fail("file ends before its data section");
  const uint64_t data_size = data_start <= bytes.size() ? bytes.size() - data_start : 0;
  uint64_t expect = 0;
  for (GgufTensor& t : f.tensors_) {
    const TypeInfo* ti = type_info(t.type);
    if (t.dims[0] % ti->block_elems != 0)
      throw ConfigError(name + ": tensor '" + t.name + "' of type " + ti->name + " has row length " +
                        std::to_string(t.dims[0]) + ", expected a multiple of " +
                        std::to_string(ti->block_elems));
    const auto blocks = static_cast<uint64_t>(t.numel() / ti->block_elems);
    if (blocks > data_size / static_cast<uint64_t>(ti->block_bytes))
      throw ConfigError(name + ": tensor '" + t.name + "' (" + std::to_string(blocks) + " blocks of " +
                        ti->name + ") is larger than the file's data section (truncated?)");
    const uint64_t nbytes = blocks * static_cast<uint64_t>(ti->block_bytes);
    if (t.offset != expect)
      throw ConfigError(name + ": tensor '" + t.name + "' has data offset " + std::to_string(t.offset) +
                        ", expected " + std::to_string(expect));
    if (nbytes > data_size || t.offset > data_size - nbytes)
      throw ConfigError(name + ": tensor '" + t.name + "' (" + std::to_string(nbytes) +
                        " bytes at data offset " + std::to_string(t.offset) +
                        ") runs past the end of the file (truncated?)");
    t.data = bytes.subspan(data_start + t.offset, nbytes);
    expect = t.offset + (nbytes + f.alignment_ - 1) / f.alignment_ * f.alignment_;
  }
  return f;
}

const GgufTensor* GgufFile::find_tensor(std::string_view n) const {
  auto it = index_.find(n);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

const GgufValue& GgufFile::require(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) throw ConfigError(name_ + ": missing GGUF metadata key '" + std::string(key) + "'");
  return *v;
}

namespace {
bool is_int(GgufType t) {
  return scalar_size(t) != 0 && t != GgufType::f32 && t != GgufType::f64 && t != GgufType::boolean;
}
ConfigError type_error(const std::string& file, std::string_view key, const char* expected) {
  return ConfigError(file + ": GGUF metadata '" + std::string(key) + "' is not " + expected);
}
}  // namespace

std::string GgufFile::get_string(std::string_view key) const {
  const GgufValue& v = require(key);
  if (v.type != GgufType::string) throw type_error(name_, key, "a string");
  return v.s;
}
std::string GgufFile::get_string(std::string_view key, const std::string& def) const {
  return find(key) ? get_string(key) : def;
}
int64_t GgufFile::get_int(std::string_view key) const {
  const GgufValue& v = require(key);
  if (!is_int(v.type) || (v.type == GgufType::u64 && v.u > static_cast<uint64_t>(INT64_MAX)))
    throw type_error(name_, key, "an integer");
  return v.i;
}
int64_t GgufFile::get_int(std::string_view key, int64_t def) const {
  return find(key) ? get_int(key) : def;
}
double GgufFile::get_float(std::string_view key) const {
  const GgufValue& v = require(key);
  if (v.type == GgufType::f32 || v.type == GgufType::f64) return v.f;
  if (is_int(v.type)) return static_cast<double>(v.i);
  throw type_error(name_, key, "a number");
}
double GgufFile::get_float(std::string_view key, double def) const {
  return find(key) ? get_float(key) : def;
}
bool GgufFile::get_bool(std::string_view key, bool def) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return def;
  if (v->type != GgufType::boolean) throw type_error(name_, key, "a bool");
  return v->b;
}
std::vector<std::string> GgufFile::get_string_array(std::string_view key) const {
  const GgufValue& v = require(key);
  if (v.type != GgufType::array || v.elem_type != GgufType::string)
    throw type_error(name_, key, "an array of strings");
  return v.strs;
}
std::vector<int64_t> GgufFile::get_int_array(std::string_view key) const {
  const GgufValue& v = require(key);
  if (v.type != GgufType::array || !(is_int(v.elem_type) || v.elem_type == GgufType::boolean))
    throw type_error(name_, key, "an array of integers");
  return v.ints;
}
std::vector<float> GgufFile::get_float_array(std::string_view key) const {
  const GgufValue& v = require(key);
  if (v.type != GgufType::array || (v.elem_type != GgufType::f32 && v.elem_type != GgufType::f64))
    throw type_error(name_, key, "an array of floats");
  return {v.floats.begin(), v.floats.end()};
}

std::vector<float> GgufFile::dequantize(const GgufTensor& t) const {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  dequantize_into(t, out.data());
  return out;
}

bool ggml_dequantize(const uint8_t* p, uint32_t type, size_t n, float* dst) {
  auto h16 = [](const uint8_t* q) {
    uint16_t h;
    std::memcpy(&h, q, 2);
    return h;
  };
  switch (type) {
    case 0: std::memcpy(dst, p, n * 4); return true;
    case 1: for (size_t i = 0; i < n; ++i) dst[i] = f16_to_f32(h16(p + 2 * i)); return true;
    case 30: for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(h16(p + 2 * i)); return true;
    case 8:  // Q8_0: f16 scale d, 32 x int8: x = d * q
      for (size_t b = 0; b < n / 32; ++b, p += 34) {
        const float d = f16_to_f32(h16(p));
        for (int j = 0; j < 32; ++j) dst[b * 32 + j] = d * static_cast<float>(static_cast<int8_t>(p[2 + j]));
      }
      return true;
    case 2:  // Q4_0: f16 d, 16 bytes of nibbles: low nibbles are x[0..15], high x[16..31]
      for (size_t b = 0; b < n / 32; ++b, p += 18) {
        const float d = f16_to_f32(h16(p));
        for (int j = 0; j < 16; ++j) {
          dst[b * 32 + j] = d * static_cast<float>((p[2 + j] & 0x0f) - 8);
          dst[b * 32 + j + 16] = d * static_cast<float>((p[2 + j] >> 4) - 8);
        }
      }
      return true;
    case 3:  // Q4_1: f16 d, f16 min m, nibbles as Q4_0: x = d * q + m
      for (size_t b = 0; b < n / 32; ++b, p += 20) {
        const float d = f16_to_f32(h16(p)), m = f16_to_f32(h16(p + 2));
        for (int j = 0; j < 16; ++j) {
          dst[b * 32 + j] = d * static_cast<float>(p[4 + j] & 0x0f) + m;
          dst[b * 32 + j + 16] = d * static_cast<float>(p[4 + j] >> 4) + m;
        }
      }
      return true;
    default: return false;
  }
}

void GgufFile::dequantize_into(const GgufTensor& t, float* dst) const {
  if (!ggml_dequantize(t.data.data(), t.type, static_cast<size_t>(t.numel()), dst))
    throw ConfigError(name_ + ": tensor '" + t.name + "' has type " +
                      std::string(ggml_type_name(t.type)) +
                      ", expected one of F32, F16, BF16, Q8_0, Q4_0, Q4_1");
}

}  // namespace twinfer
