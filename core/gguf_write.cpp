// GGUF v3 writer and ggml's reference quantizers (Q8_0, Q4_0, Q4_1): used by tests, fuzz seeds
// and for exporting checkpoints llama.cpp can read.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>

#include "core/error.h"
#include "core/gguf.h"
#include "core/safetensors.h"

namespace twinfer {

GgufValue gguf_string(std::string s) {
  GgufValue v;
  v.type = GgufType::string;
  v.s = std::move(s);
  return v;
}
GgufValue gguf_u32(uint32_t x) {
  GgufValue v;
  v.type = GgufType::u32;
  v.i = x;
  v.u = x;
  return v;
}
GgufValue gguf_f32(float x) {
  GgufValue v;
  v.type = GgufType::f32;
  v.f = x;
  return v;
}
GgufValue gguf_string_array(std::vector<std::string> s) {
  GgufValue v;
  v.type = GgufType::array;
  v.elem_type = GgufType::string;
  v.count = s.size();
  v.strs = std::move(s);
  return v;
}

std::vector<uint8_t> ggml_quantize(std::span<const float> x, uint32_t type) {
  int64_t be = 0, bb = 0;
  if (!ggml_block_layout(type, be, bb))
    throw ConfigError("ggml_quantize: unsupported type " + std::string(ggml_type_name(type)));
  if (x.size() % static_cast<size_t>(be) != 0)
    throw ConfigError("ggml_quantize: " + std::to_string(x.size()) +
                      " values, expected a multiple of " + std::to_string(be));
  std::vector<uint8_t> out(x.size() / static_cast<size_t>(be) * static_cast<size_t>(bb));
  auto put16 = [](uint8_t* p, uint16_t h) { std::memcpy(p, &h, 2); };
  uint8_t* p = out.data();
  switch (type) {
    case 0: std::memcpy(p, x.data(), x.size() * 4); break;
    case 1: for (size_t i = 0; i < x.size(); ++i) put16(p + 2 * i, f32_to_f16(x[i])); break;
    case 30: for (size_t i = 0; i < x.size(); ++i) put16(p + 2 * i, f32_to_bf16(x[i])); break;
    case 8:
      for (size_t b = 0; b < x.size() / 32; ++b, p += 34) {
        const float* v = x.data() + b * 32;
        float amax = 0.0f;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::abs(v[j]));
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        put16(p, f32_to_f16(d));
        for (int j = 0; j < 32; ++j) p[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::round(v[j] * id)));
      }
      break;
    case 2:
      for (size_t b = 0; b < x.size() / 32; ++b, p += 18) {
        const float* v = x.data() + b * 32;
        float amax = 0.0f, mx = 0.0f;  // the value of largest magnitude, sign kept
        for (int j = 0; j < 32; ++j)
          if (std::abs(v[j]) > amax) {
            amax = std::abs(v[j]);
            mx = v[j];
          }
        const float d = mx / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        put16(p, f32_to_f16(d));
        for (int j = 0; j < 16; ++j) {
          const int q0 = std::min(15, static_cast<int>(v[j] * id + 8.5f));
          const int q1 = std::min(15, static_cast<int>(v[j + 16] * id + 8.5f));
          p[2 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
        }
      }
      break;
    case 3:
      for (size_t b = 0; b < x.size() / 32; ++b, p += 20) {
        const float* v = x.data() + b * 32;
        float lo = v[0], hi = v[0];
        for (int j = 1; j < 32; ++j) {
          lo = std::min(lo, v[j]);
          hi = std::max(hi, v[j]);
        }
        const float d = (hi - lo) / 15.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        put16(p, f32_to_f16(d));
        put16(p + 2, f32_to_f16(lo));
        for (int j = 0; j < 16; ++j) {
          const int q0 = std::min(15, static_cast<int>((v[j] - lo) * id + 0.5f));
          const int q1 = std::min(15, static_cast<int>((v[j + 16] - lo) * id + 0.5f));
          p[4 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
        }
      }
      break;
  }
  return out;
}

namespace {

struct Out {
  std::vector<uint8_t> b;
  template <class T>
  void put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b.insert(b.end(), p, p + sizeof(T));
  }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
  }
  void pad(uint64_t a) {
    while (b.size() % a != 0) b.push_back(0);
  }
};

void put_scalar(Out& o, GgufType t, int64_t i, double f) {
  switch (t) {
    case GgufType::u8: o.put<uint8_t>(static_cast<uint8_t>(i)); break;
    case GgufType::i8: o.put<int8_t>(static_cast<int8_t>(i)); break;
    case GgufType::u16: o.put<uint16_t>(static_cast<uint16_t>(i)); break;
    case GgufType::i16: o.put<int16_t>(static_cast<int16_t>(i)); break;
    case GgufType::u32: o.put<uint32_t>(static_cast<uint32_t>(i)); break;
    case GgufType::i32: o.put<int32_t>(static_cast<int32_t>(i)); break;
    case GgufType::u64: o.put<uint64_t>(static_cast<uint64_t>(i)); break;
    case GgufType::i64: o.put<int64_t>(i); break;
    case GgufType::f32: o.put<float>(static_cast<float>(f)); break;
    case GgufType::f64: o.put<double>(f); break;
    case GgufType::boolean: o.put<uint8_t>(i != 0); break;
    default: throw ConfigError("write_gguf: not a scalar type");
  }
}

}  // namespace

void write_gguf(const std::string& path, const std::vector<std::pair<std::string, GgufValue>>& kv,
                const std::vector<GgufWriteTensor>& tensors, uint64_t alignment) {
  Out o;
  o.put<uint32_t>(0x46554747);
  o.put<uint32_t>(3);
  o.put<uint64_t>(tensors.size());
  o.put<uint64_t>(kv.size());
  for (const auto& [key, v] : kv) {
    o.str(key);
    o.put<uint32_t>(static_cast<uint32_t>(v.type));
    if (v.type == GgufType::string) {
      o.str(v.s);
    } else if (v.type == GgufType::array) {
      o.put<uint32_t>(static_cast<uint32_t>(v.elem_type));
      if (v.elem_type == GgufType::string) {
        o.put<uint64_t>(v.strs.size());
        for (const auto& s : v.strs) o.str(s);
      } else if (v.elem_type == GgufType::f32 || v.elem_type == GgufType::f64) {
        o.put<uint64_t>(v.floats.size());
        for (double f : v.floats) put_scalar(o, v.elem_type, 0, f);
      } else {
        o.put<uint64_t>(v.ints.size());
        for (int64_t i : v.ints) put_scalar(o, v.elem_type, i, 0.0);
      }
    } else {
      put_scalar(o, v.type, v.type == GgufType::boolean ? v.b : v.i, v.f);
    }
  }
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    o.str(t.name);
    o.put<uint32_t>(static_cast<uint32_t>(t.dims.size()));
    for (int64_t d : t.dims) o.put<uint64_t>(static_cast<uint64_t>(d));
    o.put<uint32_t>(t.type);
    o.put<uint64_t>(offset);
    offset += (t.data.size() + alignment - 1) / alignment * alignment;
  }
  o.pad(alignment);
  for (const auto& t : tensors) {
    o.b.insert(o.b.end(), t.data.begin(), t.data.end());
    o.pad(alignment);
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw ConfigError(path + ": cannot open for writing");
  out.write(reinterpret_cast<const char*>(o.b.data()), static_cast<std::streamsize>(o.b.size()));
  if (!out.flush()) throw ConfigError(path + ": write failed");
}

}  // namespace twinfer
