// A screen rectangle rasterised on the CPU and copied into the frame with one blit: for dense
// content (a bar per pixel column, thousands of KV cells, per-column plot segments).
//
// Why: under Mesa's software rasterizer (llvmpipe: any machine without a GPU, and Xvfb) cost
// follows the 4x4-pixel blocks each triangle touches, each shaded with a texture fetch and a
// blend. A 1-px column or a 6-px cell touches blocks it barely covers, and ImGui draws every
// rectangle as two triangles, so a plot of 1,300 columns cost more than a full-screen fill.
// Here the same rectangles are memory writes, and the result reaches the back buffer with one
// framebuffer blit (set up so llvmpipe takes its fast path; trivial on a GPU). ImGui primitives
// added to the draw list after the layer (text, outlines, hover marks) still draw on top.
#pragma once
#include <imgui.h>

#include <cstdint>
#include <vector>

namespace twinfer::viz {

class PixelLayer {
 public:
  PixelLayer() = default;
  PixelLayer(const PixelLayer&) = delete;
  PixelLayer& operator=(const PixelLayer&) = delete;
  ~PixelLayer();

  // Starts a frame of the layer over [a, b) (screen pixels, rounded) filled with the opaque
  // `bg`, and adds the blit to `dl` at this point of its command order, clipped to the draw
  // list's clip rect. Fill afterwards; the pixels are uploaded when the frame renders.
  void begin(ImDrawList* dl, ImVec2 a, ImVec2 b, ImU32 bg) {
    place(dl, a, b);
    clear(bg);
  }
  // begin() in two halves, for content that is often the same as last frame: place() adds the
  // blit and sets the rect; then either clear() and fill, or keep() to blit the texture as it
  // was last uploaded (no fills, no compare, no upload). keep() returns false, and changes
  // nothing, when the texture cannot serve: another size, or nothing uploaded yet.
  void place(ImDrawList* dl, ImVec2 a, ImVec2 b);
  void clear(ImU32 bg);
  bool keep();
  // Fills [x0, x1) x [y0, y1) in screen coordinates (rounded to pixel centres as ImGui does,
  // clipped to the layer); a translucent colour blends over what the layer holds.
  void fill(float x0, float y0, float x1, float y1, ImU32 col);
  void fill(ImVec2 a, ImVec2 b, ImU32 col) { fill(a.x, a.y, b.x, b.y, col); }
  // Draws [b, e) in the current ImGui font and size at `pos` as ImFont::RenderText places it
  // (one line, glyph quads from the floored position) and as the backend shades it with the
  // font atlas sampled GL_NEAREST: each covered pixel takes the atlas texel under its centre
  // and blends `col` at col alpha x texel alpha. Clipped like fill(). For dense static text
  // (a table of numbers), where llvmpipe spends more on the glyph quads than the layer costs.
  void text(ImVec2 pos, ImU32 col, const char* b, const char* e);
  // Restricts later fills to [a, b) (screen coordinates) until reset_clip().
  void set_clip(ImVec2 a, ImVec2 b);
  void reset_clip();

  int width() const { return w_; }
  int height() const { return h_; }

 private:
  static void blit_callback(const ImDrawList*, const ImDrawCmd* cmd);
  void upload_and_blit(const ImDrawCmd* cmd);

  int x_ = 0, y_ = 0, w_ = 0, h_ = 0;            // screen rect of the layer, pixels
  int cx0_ = 0, cy0_ = 0, cx1_ = 0, cy1_ = 0;    // fill clip, layer pixels
  std::vector<uint32_t> px_;                     // BGRA (GL_BGRA, 8_8_8_8_REV), top row first
  std::vector<uint32_t> uploaded_;               // what the texture holds: unchanged frames skip the upload
  bool keep_ = false;                            // this frame blits the texture as it is
  unsigned tex_ = 0, fbo_ = 0;
  int tex_w_ = 0, tex_h_ = 0;
  float clip_x0_ = 0, clip_y0_ = 0, clip_x1_ = 0, clip_y1_ = 0;  // draw list clip at begin()
};

// The layer of one ImGui ID (ImGui::GetID(name) in the current window), created on first use
// and kept for the program's life: each call site that draws in the same frame needs its own.
PixelLayer& layer_for(const char* name);

}  // namespace twinfer::viz
