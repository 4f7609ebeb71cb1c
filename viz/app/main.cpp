// twinfer-viz: window, GL context and the frame loop (GLFW + OpenGL3 backends of Dear ImGui),
// command-line parsing, headless screenshots and the PNG checker used by the tests.
//
//   twinfer-viz RUN_DIR...                      open runs
//   twinfer-viz --live [run flags]               live simulator (flags as `twinfer run`)
//   twinfer-viz --screenshot F.png [--frames N] [--panel NAME] [--size WxH] RUN_DIR...
//   twinfer-viz --check-png F.png [--expect WxH] [--min-content FRACTION]
//   twinfer-viz --bench-frames N [--panel NAME] [--size WxH] RUN_DIR...   frame-time benchmark
#include <GLFW/glfw3.h>
#include <imgui.h>
#include <backends/imgui_impl_glfw.h>
#include <backends/imgui_impl_opengl3.h>

#include <boost/program_options.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "app/commands.h"
#include "core/error.h"
#include "viz/app/app.h"
#include "viz/app/frame_bench.h"
#include "viz/model/png.h"

namespace po = boost::program_options;
using namespace twinfer;
using namespace twinfer::viz;

namespace {

const char* kUsage =
    "usage: twinfer-viz [options] RUN_DIR...\n"
    "       twinfer-viz --live [twinfer run flags]\n"
    "       twinfer-viz --bench-frames N [--panel NAME] [--size WxH] RUN_DIR...\n"
    "       twinfer-viz --check-png FILE.png [--expect WxH] [--min-content F]\n\n"
    "options:\n"
    "  --panel NAME         start on timeline | kv | requests | metrics | compare | live\n"
    "  --screenshot FILE    render headless (use xvfb-run), write a PNG and exit\n"
    "  --frames N           frames to render before the screenshot (default 8)\n"
    "  --size WxH           window size (default 1600x1000)\n"
    "  --time T0:T1         initial timeline range, seconds on the run's clock\n"
    "  --at T               initial KV block map time (default: peak KV usage)\n"
    "  --select ID          select a request (its row, blocks and block table)\n"
    "  --min-content F      screenshot/check fails when under this fraction of pixels differs\n"
    "                       from the background (default 0.02)\n"
    "  --stats              print load time and frame times (app / GL render / swap) on exit\n"
    "  --bench-frames N     draw N frames as fast as possible (no vsync) after 10 warm-up frames,\n"
    "                       print the load time, the GL renderer and median / p95 frame times\n"
    "                       split into app, GL render and swap, with vertex and draw-call counts\n"
    "  --bench-motion       with --bench-frames: change the view every frame (timeline pans 1%,\n"
    "                       KV map plays 4 steps a frame, CDF axes switch log/linear)\n"
    "  --live [flags]       run the simulator in the app; flags after --live are `twinfer run`\n"
    "                       flags (e.g. --block-size 32 --max-num-seqs 8 --preemption-mode swap)\n";

struct Cli {
  std::vector<std::string> runs;
  std::string screenshot, check_png;
  int frames = 8;
  int bench_frames = 0;
  bool bench_motion = false;
  int width = 1600, height = 1000;
  int expect_w = 0, expect_h = 0;
  double min_content = 0.02;
  bool stats = false;
  bool live = false;
  std::vector<std::string> live_flags;
  bool panel_given = false;
  Panel panel = Panel::timeline;
  double t0 = 0, t1 = 0, at = std::numeric_limits<double>::infinity();
  long long select = -1;
};

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "twinfer-viz: %s\n\n%s", msg.c_str(), kUsage);
  std::exit(2);
}

bool parse_size(const std::string& s, int& w, int& h) {
  return std::sscanf(s.c_str(), "%dx%d", &w, &h) == 2 && w >= 64 && h >= 64 && w <= 8192 && h <= 8192;
}

Cli parse(int argc, char** argv) {
  Cli c;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(a + " needs a value");
      return argv[++i];
    };
    if (c.live && a != "--screenshot" && a != "--frames" && a != "--bench-frames" && a != "--bench-motion" && a != "--size" && a != "--panel" && a != "--stats" &&
        a != "--min-content" && a != "--time" && a != "--at" && a != "--select") {
      c.live_flags.push_back(a);  // everything else after --live belongs to the run config
      continue;
    }
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (a == "--screenshot") c.screenshot = value();
    else if (a == "--check-png") c.check_png = value();
    else if (a == "--frames") {
      c.frames = std::atoi(value().c_str());
      if (c.frames < 1) usage_error("--frames must be at least 1");
    } else if (a == "--bench-frames") {
      c.bench_frames = std::atoi(value().c_str());
      if (c.bench_frames < 1) usage_error("--bench-frames must be at least 1");
    } else if (a == "--size") {
      if (!parse_size(value(), c.width, c.height)) usage_error("--size expects WxH, e.g. 1600x1000");
    } else if (a == "--expect") {
      if (!parse_size(value(), c.expect_w, c.expect_h)) usage_error("--expect expects WxH");
    } else if (a == "--min-content") c.min_content = std::atof(value().c_str());
    else if (a == "--time") {
      if (std::sscanf(value().c_str(), "%lf:%lf", &c.t0, &c.t1) != 2 || !(c.t1 > c.t0))
        usage_error("--time expects T0:T1 with T0 < T1, e.g. 18:20");
    } else if (a == "--select") {
      if (std::sscanf(value().c_str(), "%lld", &c.select) != 1) usage_error("--select expects a request id");
    } else if (a == "--at") {
      if (std::sscanf(value().c_str(), "%lf", &c.at) != 1) usage_error("--at expects a time in seconds");
    }
    else if (a == "--stats") c.stats = true;
    else if (a == "--bench-motion") c.bench_motion = true;
    else if (a == "--live") c.live = true;
    else if (a == "--panel") {
      const std::string p = value();
      bool ok = false;
      for (int k = 0; k < static_cast<int>(Panel::count); ++k)
        if (p == panel_name(static_cast<Panel>(k))) {
          c.panel = static_cast<Panel>(k);
          ok = true;
        }
      if (!ok) usage_error("unknown --panel '" + p + "' (timeline, kv, requests, metrics, compare, live)");
      c.panel_given = true;
    } else if (!a.empty() && a[0] == '-') usage_error("unknown option " + a);
    else c.runs.push_back(a);
  }
  return c;
}

RunConfig live_config(const std::vector<std::string>& flags) {
  RunConfig cfg = live_default_config();
  po::options_description d("run flags");
  add_run_options(d, cfg);
  po::variables_map vm;
  po::store(po::command_line_parser(flags).options(d).run(), vm);
  po::notify(vm);
  apply_run_flags(vm, cfg);
  return cfg;
}

int check_png(const Cli& c) {
  const Image img = read_png(c.check_png);
  uint8_t bg[3];
  dominant_color(img, bg);
  const double frac = non_background_fraction(img, bg);
  std::printf("%s: %dx%d, %.1f%% of pixels differ from the background #%02x%02x%02x\n", c.check_png.c_str(),
              img.width, img.height, frac * 100, bg[0], bg[1], bg[2]);
  if (c.expect_w && (img.width != c.expect_w || img.height != c.expect_h)) {
    std::fprintf(stderr, "%s: size %dx%d, expected %dx%d\n", c.check_png.c_str(), img.width, img.height,
                 c.expect_w, c.expect_h);
    return 1;
  }
  if (frac < c.min_content) {
    std::fprintf(stderr, "%s: looks blank (%.2f%% content, expected at least %.2f%%)\n", c.check_png.c_str(),
                 frac * 100, c.min_content * 100);
    return 1;
  }
  return 0;
}

// Reads the back buffer (what was just rendered) top row first.
Image grab(int w, int h) {
  Image img;
  img.width = w;
  img.height = h;
  img.channels = 3;
  img.pixels.resize(static_cast<size_t>(w) * h * 3);
  glPixelStorei(GL_PACK_ALIGNMENT, 1);
  glReadBuffer(GL_BACK);
  glReadPixels(0, 0, w, h, GL_RGB, GL_UNSIGNED_BYTE, img.pixels.data());
  const size_t stride = static_cast<size_t>(w) * 3;
  std::vector<uint8_t> tmp(stride);
  for (int y = 0; y < h / 2; ++y) {
    uint8_t* a = img.pixels.data() + y * stride;
    uint8_t* b = img.pixels.data() + (h - 1 - y) * stride;
    std::memcpy(tmp.data(), a, stride);
    std::memcpy(a, b, stride);
    std::memcpy(b, tmp.data(), stride);
  }
  return img;
}

// The backend samples the font atlas bilinearly. ImGui places glyphs on whole pixels and
// solid shapes sample one white texel, so nearest sampling draws the same pixels and is the
// cheaper fetch for a software rasterizer. Called once the backend has made the texture.
void nearest_font_texture() {
  const auto tex = static_cast<GLuint>(reinterpret_cast<intptr_t>(ImGui::GetIO().Fonts->TexID));
  if (!tex) return;
  GLint prev = 0;
  glGetIntegerv(GL_TEXTURE_BINDING_2D, &prev);
  glBindTexture(GL_TEXTURE_2D, tex);
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_NEAREST);
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_NEAREST);
  glBindTexture(GL_TEXTURE_2D, static_cast<GLuint>(prev));
}

void glfw_error(int code, const char* what) { std::fprintf(stderr, "twinfer-viz: GLFW error %d: %s\n", code, what); }

int run_app(const Cli& c) {
  AppOptions opt;
  opt.run_dirs = c.runs;
  opt.live = c.live;
  if (c.live) opt.live_config = live_config(c.live_flags);
  opt.panel_given = c.panel_given;
  opt.panel = c.panel;
  opt.fixed_dt = !c.screenshot.empty() || c.bench_frames > 0;
  opt.view.timeline.t0 = c.t0;
  opt.view.timeline.t1 = c.t1;
  opt.view.kv.t = c.at;
  opt.select_id = c.select;
  opt.bench_motion = c.bench_motion;
  const auto t_load = std::chrono::steady_clock::now();
  App app(opt);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();
  if (c.stats || c.bench_frames > 0)
    std::fprintf(c.bench_frames > 0 ? stdout : stderr, "twinfer-viz: loaded %zu run(s) in %.3f s\n", app.num_runs(),
                 load_s);
  if (!c.screenshot.empty() && app.num_runs() == 0 && !c.live && c.panel != Panel::live && !app.errors().empty())
    std::fprintf(stderr, "twinfer-viz: no run could be opened; the screenshot shows the errors\n");

  glfwSetErrorCallback(glfw_error);
  if (!glfwInit()) {
    std::fprintf(stderr, "twinfer-viz: cannot initialise GLFW (no display? run under xvfb-run for headless use)\n");
    return 1;
  }
  // Screenshots render into a hidden window; the benchmark maps its window so the swap really
  // presents (under Xvfb: a copy of the frame into the X server), as it does for a user.
  const bool headless = !c.screenshot.empty();
  if (headless) glfwWindowHint(GLFW_VISIBLE, GLFW_FALSE);
  glfwWindowHint(GLFW_CONTEXT_VERSION_MAJOR, 3);
  glfwWindowHint(GLFW_CONTEXT_VERSION_MINOR, 0);
  GLFWwindow* win = glfwCreateWindow(c.width, c.height, "twinfer-viz", nullptr, nullptr);
  if (!win) {
    std::fprintf(stderr, "twinfer-viz: cannot create an OpenGL 3.0 window\n");
    glfwTerminate();
    return 1;
  }
  glfwMakeContextCurrent(win);
  glfwSwapInterval(headless || c.bench_frames > 0 ? 0 : 1);
  IMGUI_CHECKVERSION();
  ImGui::CreateContext();
  ImGui::GetIO().IniFilename = nullptr;  // no imgui.ini next to the user's files
  ImGui::StyleColorsDark();
  ImGui_ImplGlfw_InitForOpenGL(win, true);
  ImGui_ImplOpenGL3_Init("#version 130");

  // --stats and --bench-frames time every frame; the bench skips warm-up frames (font atlas,
  // first-use caches, the driver compiling its shaders) and stops after its N frames.
  const bool bench = c.bench_frames > 0;
  const bool timed = bench || c.stats;
  constexpr int kBenchWarmup = 10;
  FrameBench times;
  FrameSample first;
  using clock = std::chrono::steady_clock;
  auto ms = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
  int rc = 0;
  for (int frame = 0; !glfwWindowShouldClose(win); ++frame) {
    const auto f0 = clock::now();
    glfwPollEvents();
    ImGui_ImplOpenGL3_NewFrame();
    if (frame == 0) nearest_font_texture();
    ImGui_ImplGlfw_NewFrame();
    ImGui::NewFrame();
    app.frame();
    ImGui::Render();
    const auto f1 = clock::now();
    int fw, fh;
    glfwGetFramebufferSize(win, &fw, &fh);
    glViewport(0, 0, fw, fh);
    // The main window draws no background (see App::frame): the clear is the background.
    const ImVec4 bg = ImGui::GetStyle().Colors[ImGuiCol_WindowBg];
    glClearColor(bg.x, bg.y, bg.z, 1.0f);
    glClear(GL_COLOR_BUFFER_BIT);
    ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());
    // A software rasterizer only queues the commands; finishing here charges its work to render
    // rather than to the swap. Untimed frames leave the driver free to overlap.
    if (timed) glFinish();
    const auto f2 = clock::now();
    if (headless && frame + 1 >= c.frames) {
      glFinish();
      try {
        const Image img = grab(fw, fh);
        uint8_t bg[3];
        dominant_color(img, bg);
        const double frac = non_background_fraction(img, bg);
        write_png(c.screenshot, img);
        std::printf("twinfer-viz: wrote %s (%dx%d, %.1f%% non-background)\n", c.screenshot.c_str(), fw, fh, frac * 100);
        if (frac < c.min_content) {
          std::fprintf(stderr, "twinfer-viz: %s looks blank (%.2f%% content)\n", c.screenshot.c_str(), frac * 100);
          rc = 3;
        }
      } catch (const std::exception& e) {
        std::fprintf(stderr, "twinfer-viz: %s\n", e.what());
        rc = 1;
      }
      glfwSetWindowShouldClose(win, GLFW_TRUE);
    }
    const auto f2b = clock::now();  // after the screenshot's read-back and PNG, kept out of the times
    glfwSwapBuffers(win);
    if (timed) glFinish();
    const auto f3 = clock::now();
    if (timed) {
      FrameSample s;
      s.app_ms = ms(f0, f1);
      s.render_ms = ms(f1, f2);
      s.swap_ms = ms(f2b, f3);
      s.total_ms = ms(f0, f3) - ms(f2, f2b);
      count_draw_data(ImGui::GetDrawData(), s);
      if (frame == 0) first = s;
      else if (!bench || frame >= kBenchWarmup) times.add(s);
    }
    if (bench && frame + 1 >= kBenchWarmup + c.bench_frames) glfwSetWindowShouldClose(win, GLFW_TRUE);
  }
  if (timed && times.size() > 0) {
    const char* renderer = reinterpret_cast<const char*>(glGetString(GL_RENDERER));
    const char* lp = std::getenv("LP_NUM_THREADS");
    int fw, fh;
    glfwGetFramebufferSize(win, &fw, &fh);
    char head[512];
    std::snprintf(head, sizeof head, "twinfer-viz: panel %s%s, %dx%d, GL renderer %s%s%s", panel_name(app.panel()),
                  c.bench_motion ? " (moving)" : "", fw, fh, renderer ? renderer : "?", lp ? ", LP_NUM_THREADS=" : "",
                  lp ? lp : "");
    std::fprintf(bench ? stdout : stderr, "twinfer-viz: first frame %.2f ms (app %.2f ms)\n", first.total_ms,
                 first.app_ms);
    times.report(bench ? stdout : stderr, head);
  }
  ImGui_ImplOpenGL3_Shutdown();
  ImGui_ImplGlfw_Shutdown();
  ImGui::DestroyContext();
  glfwDestroyWindow(win);
  glfwTerminate();
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  const Cli c = parse(argc, argv);
  try {
    if (!c.check_png.empty()) return check_png(c);
    if (c.runs.empty() && !c.live && c.panel != Panel::live && c.screenshot.empty())
      std::fprintf(stderr, "twinfer-viz: no run folder given; opening an empty window (see --help)\n");
    return run_app(c);
  } catch (const po::error& e) {
    std::fprintf(stderr, "twinfer-viz --live: %s (flags are those of `twinfer run --help`)\n", e.what());
    return 2;
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "twinfer-viz: %s\n", e.what());
    return e.exit_code();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "twinfer-viz: error: %s\n", e.what());
    return 1;
  }
}
