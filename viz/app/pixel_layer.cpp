#include "viz/app/pixel_layer.h"

#include <imgui_internal.h>  // ImTextCharFromUtf8

#define GL_GLEXT_PROTOTYPES 1
#include <GL/gl.h>
#include <GL/glext.h>
#include <GL/glx.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <unordered_map>

namespace twinfer::viz {

namespace {

// ImU32 is R in the low byte; the layer stores B in the low byte so that a little-endian
// uint32 is the framebuffer's BGRA and the blit can be a plain copy.
uint32_t to_bgra(ImU32 c) { return (c & 0xFF00FF00u) | ((c & 0xFFu) << 16) | ((c >> 16) & 0xFFu); }

// Source-over of a translucent BGRA colour onto an opaque pixel.
uint32_t blend(uint32_t dst, uint32_t src) {
  const uint32_t a = src >> 24, ia = 255 - a;
  uint32_t out = 0xFF000000u;
  for (int sh = 0; sh < 24; sh += 8) {
    const uint32_t s = (src >> sh) & 0xFF, d = (dst >> sh) & 0xFF;
    out |= ((s * a + d * ia + 127) / 255) << sh;
  }
  return out;
}

// First pixel whose centre (i + 0.5) is at or past v: [edge(v0), edge(v1)) are the pixels with
// centres in [v0, v1), as GL rasterizes ImGui's rectangles (a centre on the edge counts for the
// left/top edge only).
int edge(float v) { return static_cast<int>(std::ceil(v - 0.5f)); }

}  // namespace

PixelLayer::~PixelLayer() {
  // Layers live as long as the panels; at exit the GL context may already be gone.
  if (!glXGetCurrentContext()) return;
  if (fbo_) glDeleteFramebuffers(1, &fbo_);
  if (tex_) glDeleteTextures(1, &tex_);
}

void PixelLayer::clear(ImU32 bg) {
  keep_ = false;
  px_.assign(static_cast<size_t>(w_) * h_, to_bgra(bg | IM_COL32_A_MASK));
  reset_clip();
}

bool PixelLayer::keep() {
  if (!tex_ || tex_w_ != w_ || tex_h_ != h_) return false;
  keep_ = true;
  return true;
}

void PixelLayer::place(ImDrawList* dl, ImVec2 a, ImVec2 b) {
  x_ = edge(a.x);
  y_ = edge(a.y);
  w_ = std::max(0, edge(b.x) - x_);
  h_ = std::max(0, edge(b.y) - y_);
  keep_ = false;
  reset_clip();
  const ImVec2 ca = dl->GetClipRectMin(), cb = dl->GetClipRectMax();
  clip_x0_ = ca.x, clip_y0_ = ca.y, clip_x1_ = cb.x, clip_y1_ = cb.y;
  if (w_ > 0 && h_ > 0) dl->AddCallback(blit_callback, this);
}

void PixelLayer::set_clip(ImVec2 a, ImVec2 b) {
  cx0_ = std::clamp(edge(a.x) - x_, 0, w_);
  cx1_ = std::clamp(edge(b.x) - x_, 0, w_);
  cy0_ = std::clamp(edge(a.y) - y_, 0, h_);
  cy1_ = std::clamp(edge(b.y) - y_, 0, h_);
}

void PixelLayer::reset_clip() {
  cx0_ = cy0_ = 0;
  cx1_ = w_;
  cy1_ = h_;
}

void PixelLayer::fill(float fx0, float fy0, float fx1, float fy1, ImU32 col) {
  const int x0 = std::max(edge(fx0) - x_, cx0_), x1 = std::min(edge(fx1) - x_, cx1_);
  const int y0 = std::max(edge(fy0) - y_, cy0_), y1 = std::min(edge(fy1) - y_, cy1_);
  if (x0 >= x1 || y0 >= y1 || (col & IM_COL32_A_MASK) == 0) return;
  const uint32_t c = to_bgra(col);
  const bool opaque = (col & IM_COL32_A_MASK) == IM_COL32_A_MASK;
  for (int y = y0; y < y1; ++y) {
    uint32_t* row = px_.data() + static_cast<size_t>(y) * w_;
    if (opaque) std::fill(row + x0, row + x1, c);
    else
      for (int x = x0; x < x1; ++x) row[x] = blend(row[x], c);
  }
}

void PixelLayer::text(ImVec2 pos, ImU32 col, const char* b, const char* e) {
  const uint32_t ca = col >> 24;
  if (ca == 0 || b == e) return;
  ImFont* font = ImGui::GetFont();
  unsigned char* atlas = nullptr;
  int aw = 0, ah = 0;
  // Already built for the backend's texture: this returns the kept copy, no rebuild.
  ImGui::GetIO().Fonts->GetTexDataAsRGBA32(&atlas, &aw, &ah);
  if (!atlas) return;
  const float scale = ImGui::GetFontSize() / font->FontSize;
  const uint32_t rgb = to_bgra(col) & 0x00FFFFFFu;
  float x = std::floor(pos.x);
  const float y = std::floor(pos.y);
  while (b < e) {
    unsigned int c = static_cast<unsigned char>(*b);
    if (c < 0x80) ++b;
    else b += ImTextCharFromUtf8(&c, b, e);
    if (c == 0) break;
    if (c < 32) continue;  // single-line cells: no line breaks to honour
    const ImFontGlyph* g = font->FindGlyph(static_cast<ImWchar>(c));
    if (!g) continue;
    if (g->Visible) {
      const float gx0 = x + g->X0 * scale, gx1 = x + g->X1 * scale;
      const float gy0 = y + g->Y0 * scale, gy1 = y + g->Y1 * scale;
      const int x0 = std::max(edge(gx0) - x_, cx0_), x1 = std::min(edge(gx1) - x_, cx1_);
      const int y0 = std::max(edge(gy0) - y_, cy0_), y1 = std::min(edge(gy1) - y_, cy1_);
      // Texel under a pixel centre: u = U0 + (centre - gx0) / (gx1 - gx0) * (U1 - U0), nearest.
      const float du = (g->U1 - g->U0) / (gx1 - gx0) * static_cast<float>(aw);
      const float dv = (g->V1 - g->V0) / (gy1 - gy0) * static_cast<float>(ah);
      for (int py = y0; py < y1; ++py) {
        const float cy = static_cast<float>(py + y_) + 0.5f - gy0;
        const int ty = std::clamp(static_cast<int>(g->V0 * static_cast<float>(ah) + cy * dv), 0, ah - 1);
        const unsigned char* trow = atlas + static_cast<size_t>(ty) * aw * 4;
        uint32_t* row = px_.data() + static_cast<size_t>(py) * w_;
        for (int px = x0; px < x1; ++px) {
          const float cx = static_cast<float>(px + x_) + 0.5f - gx0;
          const int tx = std::clamp(static_cast<int>(g->U0 * static_cast<float>(aw) + cx * du), 0, aw - 1);
          const uint32_t ta = trow[tx * 4 + 3];
          if (ta == 0) continue;
          const uint32_t a = (ca * ta + 127) / 255;
          row[px] = blend(row[px], rgb | (a << 24));
        }
      }
    }
    x += g->AdvanceX * scale;
  }
}

void PixelLayer::blit_callback(const ImDrawList*, const ImDrawCmd* cmd) {
  static_cast<PixelLayer*>(cmd->UserCallbackData)->upload_and_blit(cmd);
}

void PixelLayer::upload_and_blit(const ImDrawCmd*) {
  const ImDrawData* dd = ImGui::GetDrawData();
  if (!dd || w_ <= 0 || h_ <= 0) return;
  if (!tex_) {
    glGenTextures(1, &tex_);
    glGenFramebuffers(1, &fbo_);
  }
  GLint prev_tex = 0, prev_read = 0;
  glGetIntegerv(GL_TEXTURE_BINDING_2D, &prev_tex);
  glGetIntegerv(GL_READ_FRAMEBUFFER_BINDING, &prev_read);
  glBindTexture(GL_TEXTURE_2D, tex_);
  glPixelStorei(GL_UNPACK_ALIGNMENT, 4);
  glPixelStorei(GL_UNPACK_ROW_LENGTH, 0);
  if (tex_w_ != w_ || tex_h_ != h_) {
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_NEAREST);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_NEAREST);
    // Unsized GL_RGBA with BGRA data: with the sized GL_RGBA8 llvmpipe ran every blit through a
    // shader (measured); presumably it then picks the data's BGRA8, the back buffer's format.
    glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA, w_, h_, 0, GL_BGRA, GL_UNSIGNED_INT_8_8_8_8_REV, px_.data());
    tex_w_ = w_, tex_h_ = h_;
    uploaded_ = px_;
    glBindFramebuffer(GL_READ_FRAMEBUFFER, fbo_);
    glFramebufferTexture2D(GL_READ_FRAMEBUFFER, GL_COLOR_ATTACHMENT0, GL_TEXTURE_2D, tex_, 0);
  } else if (!keep_ && uploaded_ != px_) {
    glTexSubImage2D(GL_TEXTURE_2D, 0, 0, 0, w_, h_, GL_BGRA, GL_UNSIGNED_INT_8_8_8_8_REV, px_.data());
    uploaded_.swap(px_);
  }
  // Clip to the draw list's clip rect by cutting source and destination alike (a blit with the
  // scissor test on cannot be a plain copy).
  const ImVec2 s = dd->FramebufferScale, o = dd->DisplayPos;
  const int fb_h = static_cast<int>(dd->DisplaySize.y * s.y);
  const int lx0 = std::max(x_, edge(clip_x0_)), lx1 = std::min(x_ + w_, edge(clip_x1_));
  const int ly0 = std::max(y_, edge(clip_y0_)), ly1 = std::min(y_ + h_, edge(clip_y1_));
  if (lx0 < lx1 && ly0 < ly1) {
    glBindFramebuffer(GL_READ_FRAMEBUFFER, fbo_);
    glDisable(GL_SCISSOR_TEST);
    // The texture holds the top row first (texture y = screen row - y_), so in GL terms the
    // blit flips. Under llvmpipe this flipped blit is the fast one, an unflipped blit ran
    // through a shader (timeline with its 1600x850 rows layer: 6-9 ms of render against 2-4
    // ms); presumably the window's back buffer is stored top row first and the flips cancel.
    const int sx0 = lx0 - x_, sx1 = lx1 - x_, sy0 = ly1 - y_, sy1 = ly0 - y_;
    const int dx0 = static_cast<int>((lx0 - o.x) * s.x), dx1 = static_cast<int>((lx1 - o.x) * s.x);
    const int dy0 = fb_h - static_cast<int>((ly1 - o.y) * s.y), dy1 = fb_h - static_cast<int>((ly0 - o.y) * s.y);
    glBlitFramebuffer(sx0, sy0, sx1, sy1, dx0, dy0, dx1, dy1, GL_COLOR_BUFFER_BIT, GL_NEAREST);
    glEnable(GL_SCISSOR_TEST);  // the ImGui backend enables it once per frame and expects it on
  }
  glBindFramebuffer(GL_READ_FRAMEBUFFER, static_cast<GLuint>(prev_read));
  glBindTexture(GL_TEXTURE_2D, static_cast<GLuint>(prev_tex));
}

PixelLayer& layer_for(const char* name) {
  static std::unordered_map<ImGuiID, std::unique_ptr<PixelLayer>> layers;
  std::unique_ptr<PixelLayer>& l = layers[ImGui::GetID(name)];
  if (!l) l = std::make_unique<PixelLayer>();
  return *l;
}

}  // namespace twinfer::viz
