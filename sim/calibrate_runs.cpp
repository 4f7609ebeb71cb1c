// Run folders -> StepSamples for `twinfer calibrate --from-runs` (sim/calibrate_runs.h).
#include "sim/calibrate_runs.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>

#include "core/error.h"
#include "core/memory_plan.h"
#include "core/model_spec.h"
#include "sim/hardware.h"
#include "sim/profile.h"

namespace fs = std::filesystem;

namespace twinfer {

namespace {

ConfigError bad(const std::string& what) { return ConfigError(what, 2); }

// A comma-separated table read whole; columns found by name so added columns never break it.
// Fields here never hold quoted commas (numbers, and `preempted` ids joined by ';').
class Table {
 public:
  Table(const fs::path& path) : path_(path.string()) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw bad(path_ + ": cannot open");
    std::stringstream ss;
    ss << f.rdbuf();
    text_ = ss.str();
    std::string_view line;
    if (!next_line(line) || line.empty()) throw bad(path_ + ": empty file (expected a header row)");
    split(line, header_);
  }
  const std::string& path() const { return path_; }

  // The column's index, or -1 when the file has none (a column added in a later version).
  int find(const char* name) const {
    for (size_t i = 0; i < header_.size(); ++i)
      if (header_[i] == name) return static_cast<int>(i);
    return -1;
  }
  int col(const char* name) const {
    if (const int c = find(name); c >= 0) return c;
    throw bad(path_ + ": missing column '" + name + "' (written by an older twinfer? rerun the "
              "run with this version to fit from it)");
  }
  // Advances to the next non-empty row; false at the end.
  bool next() {
    std::string_view line;
    while (next_line(line)) {
      if (line.empty()) continue;
      split(line, row_);
      if (row_.size() < header_.size())
        throw bad(where() + ": " + std::to_string(row_.size()) + " fields, the header has " +
                  std::to_string(header_.size()));
      return true;
    }
    return false;
  }
  std::string_view field(int c) const { return row_[static_cast<size_t>(c)]; }
  template <class T>
  T num(int c) const {
    const std::string_view v = row_[static_cast<size_t>(c)];
    T x{};
    const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
    if (ec != std::errc() || p != v.data() + v.size() || v.empty())
      throw bad(where() + ": column '" + std::string(header_[static_cast<size_t>(c)]) +
                "': expected a number, got '" + std::string(v) + "'");
    return x;
  }
  template <class T>
  T nonneg(int c) const {
    const T x = num<T>(c);
    if (!(x >= 0))
      throw bad(where() + ": column '" + std::string(header_[static_cast<size_t>(c)]) +
                "': expected a value >= 0, got '" + std::string(row_[static_cast<size_t>(c)]) + "'");
    return x;
  }
  std::string where() const { return path_ + ":" + std::to_string(line_); }

 private:
  std::string path_, text_;
  size_t pos_ = 0;
  int64_t line_ = 0;
  std::vector<std::string_view> header_, row_;

  bool next_line(std::string_view& out) {
    if (pos_ >= text_.size()) return false;
    size_t e = text_.find('\n', pos_);
    if (e == std::string::npos) e = text_.size();
    out = std::string_view(text_).substr(pos_, e - pos_);
    if (!out.empty() && out.back() == '\r') out.remove_suffix(1);
    pos_ = e + 1;
    ++line_;
    return true;
  }
  static void split(std::string_view line, std::vector<std::string_view>& out) {
    out.clear();
    size_t a = 0;
    while (true) {
      const size_t b = line.find(',', a);
      out.push_back(line.substr(a, b == std::string_view::npos ? std::string_view::npos : b - a));
      if (b == std::string_view::npos) break;
      a = b + 1;
    }
  }
};

double median_of(std::vector<double> v) {
  if (v.empty()) return 0;
  const size_t h = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(h), v.end());
  const double hi = v[h];
  if (v.size() % 2) return hi;
  return (*std::max_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(h)) + hi) / 2;
}

// Runs recorded before step_shapes.csv had decode_max_context: each step's longest decode
// context rebuilt from requests.csv. A request never preempted decodes in every step that starts
// between its first and last token and has decode rows (a prefill-only step pauses decoding),
// its k-th such step at context prompt_len + k. Where the rebuilt contexts of a step match its
// decode_tokens and decode_context exactly, their maximum is the step's; elsewhere (preempted or
// failed requests) the larger of the partial maximum and the mean stands in. Steps left 0 make
// the cost model use the mean.
void rebuild_longest_contexts(const fs::path& dir, const std::vector<double>& start,
                              std::vector<StepSample>& all) {
  if (!fs::is_regular_file(dir / "requests.csv")) return;
  Table rq(dir / "requests.csv");
  const int c_status = rq.col("status"), c_prompt = rq.col("prompt_len"),
            c_first = rq.col("first_token_s"), c_last = rq.col("last_token_s"),
            c_pre = rq.col("num_preemptions");
  const size_t n = all.size();
  std::vector<int64_t> count(n, 0), sum(n, 0);
  std::vector<int32_t> longest(n, 0);
  // Times are printed to the microsecond in both files: a step that starts at the printed
  // instant of a token is the next one.
  constexpr double kEps = 1e-7;
  while (rq.next()) {
    if (rq.field(c_status) != "finished" || rq.num<int64_t>(c_pre) != 0) continue;
    const double first = rq.num<double>(c_first), last = rq.num<double>(c_last);
    const int64_t prompt = rq.nonneg<int64_t>(c_prompt);
    size_t i = static_cast<size_t>(std::lower_bound(start.begin(), start.end(), first - kEps) - start.begin());
    for (int64_t k = 1; i < n && start[i] < last - kEps; ++i) {
      if (all[i].shape.decode_tokens == 0) continue;
      const int64_t ctx = prompt + k++;
      ++count[i];
      sum[i] += ctx;
      longest[i] = std::max(longest[i], static_cast<int32_t>(ctx));
    }
  }
  for (size_t i = 0; i < n; ++i) {
    StepShape& s = all[i].shape;
    if (s.decode_tokens == 0) continue;
    const bool exact = count[i] == s.decode_tokens && sum[i] == s.decode_context;
    const auto mean = static_cast<int32_t>((s.decode_context + s.decode_tokens - 1) / s.decode_tokens);
    s.decode_max_context = exact ? longest[i] : std::max(longest[i], mean);
  }
}

}  // namespace

RunSteps load_run_steps(const std::string& dir, const RunStepOptions& opt) {
  const fs::path d(dir);
  if (!fs::is_directory(d)) throw bad(dir + ": not a folder (expected a twinfer run's --out folder)");
  std::string missing;
  for (const char* f : {"config.json", "steps.csv", "step_shapes.csv"})
    if (!fs::is_regular_file(d / f)) missing += std::string(missing.empty() ? "" : ", ") + f;
  if (!missing.empty())
    throw bad(dir + ": missing " + missing +
              (missing.find("step_shapes") != std::string::npos
                   ? " (step_shapes.csv is written by runs of this twinfer version and later; "
                     "rerun to fit from this run)"
                   : ""));
  RunSteps r;
  r.dir = dir;
  r.name = fs::path(dir).lexically_normal().filename().string();
  if (r.name.empty()) r.name = fs::path(dir).lexically_normal().parent_path().filename().string();
  try {
    r.config.apply_json(Json::parse_file((d / "config.json").string()), (d / "config.json").string());
  } catch (const JsonError& e) {
    throw bad(e.what());
  }
  if (r.config.engine.tensor_parallel_size != 1)
    throw bad((d / "config.json").string() + ": tensor-parallel-size " +
              std::to_string(r.config.engine.tensor_parallel_size) +
              ": fitting from runs supports one GPU");
  r.model = resolve_model(r.config.model);
  r.weight_dtype = parse_dtype(r.config.dtype).value_or(r.model.dtype);
  r.kv_dtype = resolve_kv_dtype(r.config.engine.kv_cache_dtype, r.weight_dtype);
  const bool eager = r.config.engine.enforce_eager;

  Table st(d / "steps.csv");
  const int c_step = st.col("step"), c_start = st.col("start_s"), c_dur = st.col("duration_s");
  Table sh(d / "step_shapes.csv");
  const int s_step = sh.col("step"), s_seqs = sh.col("num_seqs"), s_pt = sh.col("prefill_tokens"),
            s_dt = sh.col("decode_tokens"), s_pc = sh.col("prefill_context"),
            s_dc = sh.col("decode_context"), s_pp = sh.col("prefill_pairs"),
            s_dp = sh.col("decode_pairs"), s_sr = sh.col("sample_rows"),
            s_pad = sh.col("padding_seqs"), s_padc = sh.col("padded_context"),
            s_sw = sh.col("swapped_blocks"), s_cp = sh.col("copied_blocks"),
            s_bs = sh.col("block_size"), s_dmc = sh.find("decode_max_context");

  std::vector<double> start, dur;
  std::vector<StepSample> all;
  // Every step, in order, before any striding: which ones met a token count first.
  const EngineConfig& ec = r.config.engine;
  const int32_t max_len = ec.max_model_len > 0
                              ? ec.max_model_len
                              : static_cast<int32_t>(r.model.max_position_embeddings);
  RowHistory rows(eager, ec.max_num_seqs,
                  std::max(r.config.effective_max_num_batched_tokens(max_len), ec.max_num_seqs));
  while (st.next()) {
    if (!sh.next())
      throw bad(sh.path() + ": ends before " + st.where() + " (one row per step expected)");
    const int64_t id = st.num<int64_t>(c_step), id2 = sh.num<int64_t>(s_step);
    if (id != id2)
      throw bad(sh.where() + ": step " + std::to_string(id2) + " where " + st.where() +
                " has step " + std::to_string(id));
    start.push_back(st.num<double>(c_start));
    dur.push_back(st.nonneg<double>(c_dur));
    StepSample x;
    StepShape& s = x.shape;
    s.num_seqs = sh.nonneg<int32_t>(s_seqs);
    s.prefill_tokens = sh.nonneg<int32_t>(s_pt);
    s.decode_tokens = sh.nonneg<int32_t>(s_dt);
    s.prefill_context = sh.nonneg<int64_t>(s_pc);
    s.decode_context = sh.nonneg<int64_t>(s_dc);
    s.prefill_pairs = sh.nonneg<int64_t>(s_pp);
    s.decode_pairs = sh.nonneg<int64_t>(s_dp);
    s.sample_rows = sh.nonneg<int32_t>(s_sr);
    s.padding_seqs = sh.nonneg<int32_t>(s_pad);
    s.padded_context = sh.nonneg<int32_t>(s_padc);
    s.swapped_blocks = sh.nonneg<int32_t>(s_sw);
    s.copied_blocks = sh.nonneg<int32_t>(s_cp);
    s.block_size = sh.nonneg<int32_t>(s_bs);
    if (s_dmc >= 0) s.decode_max_context = sh.nonneg<int32_t>(s_dmc);
    x.eager = eager;
    x.kv_dtype = r.kv_dtype;
    x.new_rows_ordinal = rows.fresh_count();
    x.new_rows = (eager || s.prefill_tokens > 0) && s.prefill_tokens + s.decode_tokens > 0 &&
                 rows.first_use(s.prefill_tokens + s.decode_tokens);
    x.new_band = x.new_rows && rows.last_new_band();
    x.first_replay = rows.first_replay(s, eager);
    all.push_back(x);
  }
  if (sh.next()) throw bad(sh.where() + ": more rows than steps.csv");
  if (s_dmc < 0) rebuild_longest_contexts(d, start, all);

  // Target = duration + the host gap before the next step when the engine went straight on.
  std::vector<double> gaps;
  double sum_dur = 0, sum_gap = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    double t = dur[i];
    if (i + 1 < all.size()) {
      const double g = std::max(0.0, start[i + 1] - (start[i] + dur[i]));
      if (g <= opt.gap_cap_s) {
        t += g;
        gaps.push_back(g);
        sum_gap += g;
      }
    }
    sum_dur += dur[i];
    if (!(dur[i] > 0)) continue;
    all[i].wall_s = t;
    r.samples.push_back(all[i]);
  }
  if (r.samples.empty()) throw bad(st.path() + ": no step with a duration > 0");
  if (opt.max_steps > 0 && static_cast<int64_t>(r.samples.size()) > opt.max_steps) {
    std::vector<StepSample> kept;
    kept.reserve(static_cast<size_t>(opt.max_steps));
    const double stride = static_cast<double>(r.samples.size()) / static_cast<double>(opt.max_steps);
    for (int64_t k = 0; k < opt.max_steps; ++k)
      kept.push_back(r.samples[static_cast<size_t>(static_cast<double>(k) * stride)]);
    r.samples = std::move(kept);
  }
  if (!(opt.time_weight >= 0 && opt.time_weight <= 1))
    throw bad("time weight " + std::to_string(opt.time_weight) + ": expected a value in [0, 1]");
  double kept_time = 0;
  for (const StepSample& x : r.samples) kept_time += x.wall_s;
  const double even = (1 - opt.time_weight) / static_cast<double>(r.samples.size());
  for (StepSample& x : r.samples) x.weight = even + opt.time_weight * x.wall_s / kept_time;
  r.gaps = static_cast<int64_t>(gaps.size());
  r.gap_mean_s = gaps.empty() ? 0 : sum_gap / static_cast<double>(gaps.size());
  r.gap_median_s = median_of(std::move(gaps));
  r.gap_share = sum_dur > 0 ? sum_gap / sum_dur : 0;
  return r;
}

CalibSetup common_setup(const std::vector<RunSteps>& runs) {
  if (runs.empty()) throw bad("calibrate --from-runs: no run folders given");
  const RunSteps& a = runs.front();
  CalibSetup s;
  s.model = a.model;
  s.hw = resolve_hardware(a.config.hardware);
  s.weight_dtype = a.weight_dtype;
  s.kv_dtype = a.kv_dtype;
  s.block_size = a.config.engine.block_size;
  const ModelFingerprint fa = ModelFingerprint::of(a.model);
  for (const RunSteps& b : runs) {
    const std::vector<std::string> diff = fa.diff(ModelFingerprint::of(b.model));
    if (!diff.empty())
      throw bad(b.dir + ": another model shape than " + a.dir + ": " + diff.front());
    if (b.config.hardware != a.config.hardware)
      throw bad(b.dir + ": hardware '" + b.config.hardware + "', " + a.dir + " has '" +
                a.config.hardware + "' (one profile is fitted per GPU)");
    if (b.weight_dtype != a.weight_dtype)
      throw bad(b.dir + ": weight dtype " + b.config.dtype + " differs from " + a.dir + "'s " +
                a.config.dtype);
  }
  return s;
}

RunStepError run_step_error(const CalibSetup& s, const CostParams& p, const RunSteps& run) {
  RunStepError e;
  std::vector<double> abs;
  abs.reserve(run.samples.size());
  double sp = 0, sm = 0, sum = 0;
  for (const StepSample& x : run.samples) {
    const double pred = predict_sample_s(s, p, x);
    abs.push_back(std::abs(pred / x.wall_s - 1));
    sum += abs.back();
    sp += pred;
    sm += x.wall_s;
  }
  e.mean_abs = abs.empty() ? 0 : sum / static_cast<double>(abs.size());
  e.median_abs = median_of(std::move(abs));
  e.total = sm > 0 ? sp / sm - 1 : 0;
  return e;
}

std::string run_fit_table(const CalibSetup& s, const std::vector<RunSteps>& runs,
                          const CostParams& before, const CostParams& after) {
  std::string out;
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-22s %6s %9s %7s | %-20s | %-20s\n", "run", "steps", "gap med",
                "gap %", "before: med|e| sum", "after: med|e| sum");
  out += buf;
  for (const RunSteps& r : runs) {
    const RunStepError b = run_step_error(s, before, r), a = run_step_error(s, after, r);
    std::snprintf(buf, sizeof buf, "%-22s %6zu %7.1fus %6.2f%% | %8.1f%% %+9.1f%% | %8.1f%% %+9.1f%%\n",
                  r.name.c_str(), r.samples.size(), r.gap_median_s * 1e6, 100 * r.gap_share,
                  100 * b.median_abs, 100 * b.total, 100 * a.median_abs, 100 * a.total);
    out += buf;
  }
  std::snprintf(buf, sizeof buf, "\n%-28s %12s %12s\n", "params", "before", "after");
  out += buf;
  for (const CostParamField& f : kCostParamFields) {
    std::snprintf(buf, sizeof buf, "  %-26s %12.4g %12.4g\n", f.name, before.*(f.ptr), after.*(f.ptr));
    out += buf;
  }
  return out;
}

}  // namespace twinfer
