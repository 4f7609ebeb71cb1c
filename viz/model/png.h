// Minimal PNG writer and reader (8-bit RGB/RGBA, zlib-compressed IDAT) for screenshots and their
// checks: the viz needs no image library beyond zlib.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace twinfer::viz {

struct Image {
  int width = 0, height = 0;
  int channels = 4;             // 3 (RGB) or 4 (RGBA)
  std::vector<uint8_t> pixels;  // [height][width][channels], top row first
};

// Throws ConfigError naming the path on I/O failure.
void write_png(const std::string& path, const Image& img);
// Reads an 8-bit, non-interlaced RGB or RGBA PNG (what write_png and most tools write).
// Throws ConfigError naming the path and what is wrong.
Image read_png(const std::string& path);

// Fraction of pixels whose colour differs from `bg` (RGB) by more than `tol` in any channel.
// A blank screenshot (only the clear colour) gives 0.
double non_background_fraction(const Image& img, const uint8_t bg[3], int tol = 8);
// The most frequent colour, taken as the background of a screenshot.
void dominant_color(const Image& img, uint8_t out[3]);

}  // namespace twinfer::viz
