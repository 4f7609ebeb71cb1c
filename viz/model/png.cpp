#include "viz/model/png.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <unordered_map>

#include "core/error.h"
#include "viz/model/csv_reader.h"

namespace twinfer::viz {

namespace {

constexpr uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

void put32(std::string& out, uint32_t v) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
  out.append(b, 4);
}

uint32_t get32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

void chunk(std::string& out, const char type[4], const std::string& data) {
  put32(out, static_cast<uint32_t>(data.size()));
  const size_t start = out.size();
  out.append(type, 4);
  out += data;
  const auto* p = reinterpret_cast<const Bytef*>(out.data() + start);
  put32(out, static_cast<uint32_t>(crc32(0, p, static_cast<uInt>(out.size() - start))));
}

uint8_t paeth(int a, int b, int c) {
  const int p = a + b - c;
  const int pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  if (pa <= pb && pa <= pc) return static_cast<uint8_t>(a);
  return static_cast<uint8_t>(pb <= pc ? b : c);
}

}  // namespace

void write_png(const std::string& path, const Image& img) {
  if (img.width <= 0 || img.height <= 0 || (img.channels != 3 && img.channels != 4) ||
      img.pixels.size() != static_cast<size_t>(img.width) * img.height * img.channels)
    throw ConfigError(path + ": cannot write an empty or inconsistent image");
  const size_t stride = static_cast<size_t>(img.width) * img.channels;
  // Each row gets filter "up" (2): screenshots repeat rows a lot, which it turns into zeros.
  std::vector<uint8_t> raw((stride + 1) * img.height);
  for (int y = 0; y < img.height; ++y) {
    uint8_t* dst = raw.data() + y * (stride + 1);
    const uint8_t* row = img.pixels.data() + y * stride;
    const uint8_t* up = y ? row - stride : nullptr;
    dst[0] = 2;
    for (size_t x = 0; x < stride; ++x) dst[1 + x] = static_cast<uint8_t>(row[x] - (up ? up[x] : 0));
  }
  uLongf zlen = compressBound(static_cast<uLong>(raw.size()));
  std::string z(zlen, '\0');
  if (compress2(reinterpret_cast<Bytef*>(z.data()), &zlen, raw.data(),
                static_cast<uLong>(raw.size()), 6) != Z_OK)
    throw ConfigError(path + ": zlib compression failed");
  z.resize(zlen);

  std::string out(reinterpret_cast<const char*>(kSignature), 8);
  std::string ihdr;
  put32(ihdr, static_cast<uint32_t>(img.width));
  put32(ihdr, static_cast<uint32_t>(img.height));
  ihdr += static_cast<char>(8);                           // bit depth
  ihdr += static_cast<char>(img.channels == 4 ? 6 : 2);  // colour type RGBA / RGB
  ihdr.append(3, '\0');                                   // deflate, adaptive filters, no interlace
  chunk(out, "IHDR", ihdr);
  chunk(out, "IDAT", z);
  chunk(out, "IEND", "");

  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw ConfigError(path + ": cannot open for writing");
  const bool ok = std::fwrite(out.data(), 1, out.size(), f) == out.size();
  if (std::fclose(f) != 0 || !ok) throw ConfigError(path + ": write failed");
}

Image read_png(const std::string& path) {
  const std::string bytes = read_file_bytes(path);
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  auto bad = [&](const std::string& why) { return ConfigError(path + ": not a readable PNG: " + why); };
  if (bytes.size() < 8 || std::memcmp(p, kSignature, 8) != 0) throw bad("missing PNG signature");
  Image img;
  std::string z;
  bool have_header = false, have_end = false;
  for (size_t pos = 8; pos < bytes.size() && !have_end;) {
    if (pos + 12 > bytes.size()) throw bad("truncated chunk");
    const uint32_t len = get32(p + pos);
    if (len > bytes.size() - pos - 12) throw bad("chunk longer than the file");
    const std::string type(bytes.data() + pos + 4, 4);
    const uint8_t* data = p + pos + 8;
    if (crc32(crc32(0, p + pos + 4, 4), data, len) != get32(data + len))
      throw bad("CRC mismatch in chunk " + type);
    if (type == "IHDR") {
      if (len != 13) throw bad("IHDR of " + std::to_string(len) + " bytes");
      img.width = static_cast<int>(get32(data));
      img.height = static_cast<int>(get32(data + 4));
      if (data[8] != 8 || (data[9] != 2 && data[9] != 6) || data[12] != 0)
        throw bad("only 8-bit non-interlaced RGB/RGBA is supported");
      img.channels = data[9] == 6 ? 4 : 3;
      if (img.width <= 0 || img.height <= 0 || img.width > 1 << 15 || img.height > 1 << 15)
        throw bad("bad size");
      have_header = true;
    } else if (type == "IDAT") {
      z.append(reinterpret_cast<const char*>(data), len);
    } else if (type == "IEND") {
      have_end = true;
    }
    pos += 12 + len;
  }
  if (!have_header || !have_end) throw bad(have_header ? "no IEND chunk" : "no IHDR chunk");
  const size_t stride = static_cast<size_t>(img.width) * img.channels;
  std::vector<uint8_t> raw((stride + 1) * img.height);
  uLongf rlen = static_cast<uLongf>(raw.size());
  if (uncompress(raw.data(), &rlen, reinterpret_cast<const Bytef*>(z.data()),
                 static_cast<uLong>(z.size())) != Z_OK || rlen != raw.size())
    throw bad("image data does not inflate to " + std::to_string(raw.size()) + " bytes");
  img.pixels.resize(stride * img.height);
  const int bpp = img.channels;
  for (int y = 0; y < img.height; ++y) {
    const uint8_t* src = raw.data() + y * (stride + 1);
    uint8_t* row = img.pixels.data() + y * stride;
    const uint8_t* up = y ? row - stride : nullptr;
    for (size_t x = 0; x < stride; ++x) {
      const int a = x >= static_cast<size_t>(bpp) ? row[x - bpp] : 0;
      const int b = up ? up[x] : 0;
      const int c = (up && x >= static_cast<size_t>(bpp)) ? up[x - bpp] : 0;
      int v = src[1 + x];
      switch (src[0]) {
        case 0: break;
        case 1: v += a; break;
        case 2: v += b; break;
        case 3: v += (a + b) / 2; break;
        case 4: v += paeth(a, b, c); break;
        default: throw bad("unknown row filter " + std::to_string(src[0]));
      }
      row[x] = static_cast<uint8_t>(v);
    }
  }
  return img;
}

double non_background_fraction(const Image& img, const uint8_t bg[3], int tol) {
  const size_t n = static_cast<size_t>(img.width) * img.height;
  if (n == 0) return 0;
  size_t diff = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* px = img.pixels.data() + i * img.channels;
    for (int c = 0; c < 3; ++c)
      if (std::abs(px[c] - bg[c]) > tol) {
        ++diff;
        break;
      }
  }
  return static_cast<double>(diff) / static_cast<double>(n);
}

void dominant_color(const Image& img, uint8_t out[3]) {
  std::unordered_map<uint32_t, size_t> hist;
  const size_t n = static_cast<size_t>(img.width) * img.height;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* px = img.pixels.data() + i * img.channels;
    ++hist[(uint32_t{px[0]} << 16) | (uint32_t{px[1]} << 8) | px[2]];
  }
  uint32_t best = 0;
  size_t count = 0;
  for (const auto& [k, c] : hist)
    if (c > count) best = k, count = c;
  out[0] = static_cast<uint8_t>(best >> 16);
  out[1] = static_cast<uint8_t>(best >> 8);
  out[2] = static_cast<uint8_t>(best);
}

}  // namespace twinfer::viz
