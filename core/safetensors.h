// safetensors files (Hugging Face's weight format): memory-mapped, validated the way the
// reference implementation validates them, and written (make-model, tests).
//
// Layout: u64 little-endian header length N, N bytes of JSON
//   {"__metadata__": {str: str}, "name": {"dtype": "BF16", "shape": [..], "data_offsets": [b, e]}}
// then the data buffer. Offsets are relative to the buffer; sorted by offset the tensors must
// tile it exactly (no gaps, no overlap, nothing after the last tensor).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace twinfer {

// A read-only memory map of a whole file. Throws ConfigError naming the path on failure.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Bytes per element of a safetensors dtype ("F32", "BF16", "I64", ...); 0 if unknown.
size_t safetensors_dtype_size(std::string_view dtype);

struct SafetensorsTensor {
  std::string name;
  std::string dtype;           // as in the header: "F32", "F16", "BF16", "I64", ...
  std::vector<int64_t> shape;  // row-major, outermost first
  std::span<const uint8_t> data;
  int64_t numel() const;
};

class SafetensorsFile {
 public:
  // Maps and validates `path`. Throws ConfigError naming the file (and tensor) on any violation.
  static SafetensorsFile open(const std::string& path);
  // Validates an in-memory file; `bytes` must outlive the result. `name` is used in errors.
  static SafetensorsFile parse(std::span<const uint8_t> bytes, const std::string& name);

  const std::string& path() const { return name_; }
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }  // offset order
  const SafetensorsTensor* find(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::string name_;
  std::shared_ptr<MappedFile> file_;  // null for parse()
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
  std::map<std::string, std::string> metadata_;
};

// One tensor to write; `data` holds numel * dtype size bytes, little-endian.
struct SafetensorsTensorData {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::span<const uint8_t> data;
};

// Writes tensors in the given order (offsets follow that order). Throws ConfigError on I/O
// failure or when a tensor's byte count disagrees with its dtype and shape.
void write_safetensors(const std::string& path, std::span<const SafetensorsTensorData> tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Streaming form for checkpoints larger than memory: `tensors` gives names, dtypes and shapes
// (their `data` is ignored); produce(i, buf) fills buf with tensor i's bytes, one at a time.
void write_safetensors_streamed(
    const std::string& path, std::span<const SafetensorsTensorData> tensors,
    const std::function<void(size_t, std::vector<uint8_t>&)>& produce,
    const std::map<std::string, std::string>& metadata = {});

// ---- 16-bit float formats ----------------------------------------------------------------------
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}
uint16_t f32_to_bf16(float f);  // round to nearest even; NaN stays NaN
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);   // round to nearest even, overflow to inf

}  // namespace twinfer
