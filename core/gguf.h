// GGUF files (llama.cpp's format, versions 2 and 3): memory-mapped and validated, metadata
// exposed with typed accessors (the tokenizer reads tokenizer.ggml.* from here), tensors
// dequantized to fp32 (F32, F16, BF16, Q8_0, Q4_0, Q4_1). A writer serves tests and fuzz seeds.
//
// Layout: "GGUF" u32 version, u64 tensor count, u64 metadata count, metadata key/values,
// tensor infos (name, dims innermost-first, ggml type, offset), padding to `general.alignment`
// (default 32), then the tensor data; every offset is relative to that data section.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace twinfer {

class MappedFile;

enum class GgufType : uint32_t {
  u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7, string = 8,
  array = 9, u64 = 10, i64 = 11, f64 = 12,
};

// ggml tensor types this reader can dequantize (others are reported by number).
enum class GgmlType : uint32_t { F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q8_0 = 8, BF16 = 30 };

std::string_view ggml_type_name(uint32_t t);  // "Q8_0", or "type 14" when unknown
// Elements per block and bytes per block; false for types this reader does not support.
bool ggml_block_layout(uint32_t t, int64_t& block_elems, int64_t& block_bytes);

// One metadata value. Scalars: integers in `i` (unsigned ones too, when they fit), floats in
// `f`, booleans in `b`, strings in `s`. Arrays: elem_type and one of strs / ints / floats
// (nested arrays keep only their count).
struct GgufValue {
  GgufType type = GgufType::u8;
  GgufType elem_type = GgufType::u8;
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0.0;
  bool b = false;
  std::string s;
  std::vector<std::string> strs;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  uint64_t count = 0;  // array length
};

struct GgufTensor {
  std::string name;
  std::vector<int64_t> dims;  // ggml order: dims[0] is the contiguous (innermost) axis
  uint32_t type = 0;          // GgmlType value
  uint64_t offset = 0;        // within the data section
  std::span<const uint8_t> data;
  int64_t numel() const;
};

class GgufFile {
 public:
  static GgufFile open(const std::string& path);
  // Validates an in-memory file; `bytes` must outlive the result. `name` is used in errors.
  static GgufFile parse(std::span<const uint8_t> bytes, const std::string& name);

  const std::string& path() const { return name_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  const std::map<std::string, GgufValue, std::less<>>& metadata() const { return kv_; }
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* find_tensor(std::string_view name) const;
  const GgufValue* find(std::string_view key) const;

  // Typed accessors: throw ConfigError naming the file and key when the key is absent (unless a
  // default is given) or has another type. Integer getters accept any integer type.
  std::string get_string(std::string_view key) const;
  std::string get_string(std::string_view key, const std::string& def) const;
  int64_t get_int(std::string_view key) const;
  int64_t get_int(std::string_view key, int64_t def) const;
  double get_float(std::string_view key) const;  // f32/f64 (or an integer)
  double get_float(std::string_view key, double def) const;
  bool get_bool(std::string_view key, bool def) const;
  std::vector<std::string> get_string_array(std::string_view key) const;  // e.g. tokens, merges
  std::vector<int64_t> get_int_array(std::string_view key) const;         // e.g. token_type
  std::vector<float> get_float_array(std::string_view key) const;         // e.g. scores

  // The tensor's values as fp32, row-major in ggml order (dims[0] fastest).
  std::vector<float> dequantize(const GgufTensor& t) const;
  void dequantize_into(const GgufTensor& t, float* dst) const;

 private:
  std::string name_;
  std::shared_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::map<std::string, GgufValue, std::less<>> kv_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
  const GgufValue& require(std::string_view key) const;
};

// Decodes n values (a multiple of the type's block size) of a supported type into dst.
// Returns false for types this reader cannot dequantize.
bool ggml_dequantize(const uint8_t* src, uint32_t type, size_t n, float* dst);

// ---- writing (tests, fuzz seeds, exporting) ----------------------------------------------------
struct GgufWriteTensor {
  std::string name;
  std::vector<int64_t> dims;  // ggml order
  uint32_t type = 0;
  std::vector<uint8_t> data;  // already in `type`'s encoding
};
// Quantizes `n` floats (a multiple of the block size) into `type`'s encoding the way ggml's
// reference quantizers do (round to nearest, Q4_0/Q8_0 scale from the largest magnitude).
std::vector<uint8_t> ggml_quantize(std::span<const float> x, uint32_t type);
// Writes a GGUF v3 file; metadata values use GgufValue's fields for their type.
void write_gguf(const std::string& path, const std::vector<std::pair<std::string, GgufValue>>& kv,
                const std::vector<GgufWriteTensor>& tensors, uint64_t alignment = 32);
GgufValue gguf_string(std::string s);
GgufValue gguf_u32(uint32_t v);
GgufValue gguf_f32(float v);
GgufValue gguf_string_array(std::vector<std::string> v);

}  // namespace twinfer
