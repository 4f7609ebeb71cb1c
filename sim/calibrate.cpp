// Calibration points, measurement records and the CostParams fit (sim/calibrate.h).
#include "sim/calibrate.h"

#include <string_view>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace twinfer {

// ---------------------------------------------------------------------------------------------
// Points

int64_t CalibPoint::tokens() const {
  int64_t n = 0;
  for (const SeqShape& q : seqs) n += q.num_new_tokens;
  return n;
}

int64_t CalibPoint::context_tokens() const {
  int64_t n = 0;
  for (const SeqShape& q : seqs) n += static_cast<int64_t>(q.context_before) + q.num_new_tokens;
  return n;
}

namespace {

CalibPoint decode_point(int batch, int ctx) {
  CalibPoint p{"decode", "decode b=" + std::to_string(batch) + " ctx=" + std::to_string(ctx), {}};
  p.seqs.assign(static_cast<size_t>(batch), SeqShape{1, ctx, false, true});
  return p;
}

// Decodes that do not sample run eagerly on the CUDA executor (graphs are captured for
// sampling decode batches only): the launch-bound step that pins kernel_launch_s.
CalibPoint eager_decode_point(int batch, int ctx) {
  CalibPoint p{"decode", "decode b=" + std::to_string(batch) + " ctx=" + std::to_string(ctx) +
                             " no-sample", {}};
  p.seqs.assign(static_cast<size_t>(batch), SeqShape{1, ctx, false, false});
  return p;
}

// `count` prompts of `len` tokens each, from an empty cache, each sampling its first token.
CalibPoint prefill_point(int count, int len) {
  CalibPoint p{"prefill", "prefill " + std::to_string(count) + "x" + std::to_string(len), {}};
  p.seqs.assign(static_cast<size_t>(count), SeqShape{len, 0, true, true});
  return p;
}

// A chunk of `len` tokens after `ctx` cached ones that does not reach the prompt's end.
CalibPoint chunk_point(int len, int ctx) {
  return CalibPoint{"prefill", "chunk " + std::to_string(len) + " after " + std::to_string(ctx),
                    {SeqShape{len, ctx, true, false}}};
}

// `batch` decodes at `ctx` plus one prefill chunk (chunked prefill's step shape).
CalibPoint mixed_point(int batch, int ctx, int chunk, int chunk_ctx, bool chunk_samples) {
  CalibPoint p{"mixed",
               "mixed b=" + std::to_string(batch) + " ctx=" + std::to_string(ctx) + " + " +
                   std::to_string(chunk) + "@" + std::to_string(chunk_ctx),
               {}};
  p.seqs.assign(static_cast<size_t>(batch), SeqShape{1, ctx, false, true});
  p.seqs.push_back(SeqShape{chunk, chunk_ctx, true, chunk_samples});
  return p;
}

}  // namespace

std::vector<CalibPoint> calibration_points(bool quick) {
  std::vector<CalibPoint> out;
  const std::vector<int> batches = quick ? std::vector<int>{1, 32, 128}
                                         : std::vector<int>{1, 8, 32, 64, 128, 256};
  const std::vector<int> contexts = quick ? std::vector<int>{128, 2048}
                                          : std::vector<int>{128, 1024, 4096};
  for (int c : contexts)
    for (int b : batches) out.push_back(decode_point(b, c));
  out.push_back(eager_decode_point(1, 128));
  out.push_back(eager_decode_point(32, 1024));
  const std::vector<int> prompts = quick ? std::vector<int>{1024, 4096}
                                         : std::vector<int>{256, 1024, 4096, 8192};
  for (int n : prompts) out.push_back(prefill_point(1, n));
  out.push_back(prefill_point(4, 1024));
  if (!quick) {
    out.push_back(prefill_point(16, 256));
    out.push_back(prefill_point(8, 1024));
    out.push_back(chunk_point(2048, 4096));
  }
  out.push_back(mixed_point(32, 1024, 2048, 0, true));
  if (!quick) {
    out.push_back(mixed_point(128, 1024, 1024, 0, true));
    out.push_back(mixed_point(64, 4096, 1024, 2048, false));
  }
  return out;
}

StepPlan shape_plan(const std::vector<SeqShape>& seqs, int32_t block_size) {
  StepPlan plan;
  plan.block_size = block_size;
  plan.seqs.reserve(seqs.size());
  RequestId id = 0;
  for (const SeqShape& q : seqs) {
    ScheduledSeq s;
    s.id = id++;
    s.num_new_tokens = q.num_new_tokens;
    s.context_before = q.context_before;
    s.is_prefill = q.is_prefill;
    s.samples = q.samples;
    (q.is_prefill ? plan.num_prefill_tokens : plan.num_decode_tokens) += q.num_new_tokens;
    plan.seqs.push_back(s);
  }
  return plan;
}

// ---------------------------------------------------------------------------------------------
// Measurement JSON. Sequences are stored run-length encoded: a 256-decode step is one entry.

Json CalibMeasurement::to_json() const {
  Json j = Json::object();
  j["kind"] = point.kind;
  j["label"] = point.label;
  Json seqs = Json::array();
  for (size_t i = 0; i < point.seqs.size();) {
    const SeqShape& q = point.seqs[i];
    size_t k = i + 1;
    while (k < point.seqs.size() && point.seqs[k].num_new_tokens == q.num_new_tokens &&
           point.seqs[k].context_before == q.context_before &&
           point.seqs[k].is_prefill == q.is_prefill && point.seqs[k].samples == q.samples)
      ++k;
    Json e = Json::object();
    e["count"] = static_cast<int64_t>(k - i);
    e["num_new_tokens"] = q.num_new_tokens;
    e["context_before"] = q.context_before;
    e["is_prefill"] = q.is_prefill;
    e["samples"] = q.samples;
    seqs.push_back(std::move(e));
    i = k;
  }
  j["seqs"] = std::move(seqs);
  j["eager"] = eager;
  j["wall_ms"] = wall_s * 1e3;
  if (!op_s.empty()) {
    Json ops = Json::object();
    for (const auto& [name, s] : op_s) ops[name] = s * 1e3;
    j["op_ms"] = std::move(ops);
  }
  return j;
}

CalibMeasurement CalibMeasurement::from_json(const Json& j, const std::string& where) {
  auto fail = [&](const std::string& what) -> ConfigError {
    return ConfigError(where + ": " + what, 2);
  };
  if (!j.is_object()) throw fail("expected an object, got " + j.dump());
  CalibMeasurement m;
  try {
    for (const auto& [key, v] : j.as_object()) {
      if (key == "kind") m.point.kind = v.as_string(key);
      else if (key == "label") m.point.label = v.as_string(key);
      else if (key == "eager") m.eager = v.as_bool(key);
      else if (key == "wall_ms") m.wall_s = v.as_number(key) * 1e-3;
      else if (key == "op_ms") {
        for (const auto& [op, ms] : v.as_object(key)) {
          const double x = ms.as_number("op_ms." + op);
          if (!(x >= 0) || !std::isfinite(x)) throw fail("op_ms." + op + ": expected ms >= 0, got " + ms.dump());
          m.op_s.emplace_back(op, x * 1e-3);
        }
      } else if (key == "seqs") {
        for (const Json& e : v.as_array(key)) {
          const Json* c = e.get("count");
          const Json* n = e.get("num_new_tokens");
          const Json* b = e.get("context_before");
          const Json* pf = e.get("is_prefill");
          const Json* sm = e.get("samples");
          if (!c || !n || !b || !pf || !sm)
            throw fail("seqs entry " + e.dump() +
                       ": expected count, num_new_tokens, context_before, is_prefill, samples");
          const int64_t count = c->as_int("count"), nn = n->as_int("num_new_tokens"),
                        cb = b->as_int("context_before");
          if (count < 1 || count > 100000 || nn < 1 || nn > (1 << 24) || cb < 0 || cb > (1 << 26))
            throw fail("seqs entry " + e.dump() + ": count, num_new_tokens >= 1 and context_before >= 0 expected");
          const SeqShape q{static_cast<int32_t>(nn), static_cast<int32_t>(cb),
                           pf->as_bool("is_prefill"), sm->as_bool("samples")};
          m.point.seqs.insert(m.point.seqs.end(), static_cast<size_t>(count), q);
        }
      } else {
        throw fail("unknown field '" + key + "' (known: kind, label, seqs, eager, wall_ms, op_ms)");
      }
    }
  } catch (const JsonError& e) {
    throw fail(e.what());
  }
  if (m.point.seqs.empty()) throw fail("'seqs' is missing or empty");
  if (!(m.wall_s >= 0) || !std::isfinite(m.wall_s)) throw fail("wall_ms: expected ms >= 0");
  return m;
}

// ---------------------------------------------------------------------------------------------
// Fit

namespace {

// Every CostParams field can be fitted except the all-reduce latency (one GPU here).
using FitField = CostParamField;
bool fittable(const FitField& f) { return std::string_view(f.name) != "allreduce_alpha_s"; }

double loss(double r, double huber_delta) {
  if (huber_delta > 0 && std::abs(r) > huber_delta)
    return 2 * huber_delta * std::abs(r) - huber_delta * huber_delta;
  return r * r;
}

// Samples (and the op lists of op-profiled calibration points) gathered once per fit: the
// objective runs thousands of times. One CostModel per (eager, KV dtype) the samples use.
struct Prepared {
  const CalibSetup& s;
  std::vector<StepSample> xs;
  std::vector<const std::vector<std::pair<std::string, double>>*> ops;  // per sample, or null
  std::vector<DType> kvs;     // distinct KV dtypes
  std::vector<uint8_t> model_of;  // per sample: 2 * kv index + eager
  double huber = 0;

  Prepared(const CalibSetup& setup, std::vector<StepSample> samples,
           std::vector<const std::vector<std::pair<std::string, double>>*> op_lists, double h)
      : s(setup), xs(std::move(samples)), ops(std::move(op_lists)), huber(h) {
    ops.resize(xs.size(), nullptr);
    model_of.reserve(xs.size());
    for (const StepSample& x : xs) {
      auto it = std::find(kvs.begin(), kvs.end(), x.kv_dtype);
      if (it == kvs.end()) it = kvs.insert(kvs.end(), x.kv_dtype);
      model_of.push_back(static_cast<uint8_t>(2 * (it - kvs.begin()) + (x.eager ? 1 : 0)));
    }
  }

  double objective(const CostParams& p) const {
    std::vector<CostModel> models;
    models.reserve(2 * kvs.size());
    for (DType kv : kvs)
      for (bool eager : {false, true})
        models.emplace_back(s.model, s.hw, p, s.weight_dtype, kv, 1, eager);
    double wall_sum = 0, wall_w = 0, op_sum = 0;
    int op_n = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
      const StepSample& x = xs[i];
      const bool has_ops = ops[i] && !ops[i]->empty();
      if (!(x.wall_s > 0) && !has_ops) continue;
      const StepCost c = sample_cost(models[model_of[i]], x, has_ops);
      if (x.wall_s > 0) {
        wall_sum += x.weight * loss(c.total_s / x.wall_s - 1, huber);
        wall_w += x.weight;
      }
      if (has_ops) {
        // Each op's squared relative error weighted by its share of the measured device time:
        // the large GEMMs decide the efficiencies, a 5 us launch-bound norm does not.
        double total = 0, acc = 0;
        for (const auto& [name, t] : *ops[i]) total += t;
        if (!(total > 0)) continue;
        for (const auto& [name, t] : *ops[i]) {
          if (!(t > 0)) continue;
          double pred = 0;
          for (const OpCost& o : c.ops)
            if (o.op == name) pred += o.seconds;
          const double r = pred / t - 1;
          acc += (t / total) * r * r;
        }
        op_sum += acc;
        ++op_n;
      }
    }
    return (wall_w > 0 ? wall_sum / wall_w : 0.0) + (op_n ? op_sum / op_n : 0.0);
  }
};

Prepared prepare_measurements(const CalibSetup& s, const std::vector<CalibMeasurement>& ms,
                              double huber) {
  std::vector<StepSample> xs;
  std::vector<const std::vector<std::pair<std::string, double>>*> ops;
  xs.reserve(ms.size());
  for (const CalibMeasurement& m : ms) {
    xs.push_back(StepSample{StepShape::of(shape_plan(m.point.seqs, s.block_size)), m.eager,
                            s.kv_dtype, m.wall_s, 1.0});
    ops.push_back(&m.op_s);
  }
  return Prepared(s, std::move(xs), std::move(ops), huber);
}

const FitField& fit_field(const std::string& name) {
  for (const FitField& f : kCostParamFields)
    if (fittable(f) && name == f.name) return f;
  std::string known;
  for (const FitField& f : kCostParamFields)
    if (fittable(f)) known += std::string(known.empty() ? "" : ", ") + f.name;
  throw ConfigError("calibrate: cannot fit '" + name + "' (fittable: " + known + ")", 2);
}

}  // namespace

std::vector<std::string> default_fit_params() {
  return {"gemm_flops_eff", "mem_bw_eff",     "attn_bw_eff",       "attn_flops_eff",
          "kernel_launch_s", "graph_launch_s", "sampling_s_per_seq"};
}

std::vector<std::string> fittable_params() {
  std::vector<std::string> out;
  for (const FitField& f : kCostParamFields)
    if (fittable(f)) out.push_back(f.name);
  return out;
}

double predict_wall_s(const CalibSetup& s, const CostParams& p, const CalibMeasurement& m) {
  const CostModel cm(s.model, s.hw, p, s.weight_dtype, s.kv_dtype, 1, m.eager);
  return cm.step_cost(shape_plan(m.point.seqs, s.block_size)).total_s;
}

double fit_objective(const CalibSetup& s, const CostParams& p,
                     const std::vector<CalibMeasurement>& ms) {
  return prepare_measurements(s, ms, 0).objective(p);
}

double step_samples_objective(const CalibSetup& s, const CostParams& p,
                              const std::vector<StepSample>& samples, double huber_delta) {
  return Prepared(s, samples, {}, huber_delta).objective(p);
}

double predict_sample_s(const CalibSetup& s, const CostParams& p, const StepSample& x) {
  const CostModel cm(s.model, s.hw, p, s.weight_dtype, x.kv_dtype, 1, x.eager);
  return sample_cost(cm, x).total_s;
}

namespace {

// Coordinate search on log(value): each parameter moves by a factor e^{+-step}, repeating a
// move while it helps (a cheap line search); the step halves after a sweep with no gain.
FitResult coordinate_search(const Prepared& prep, const CostParams& start, const FitOptions& opts) {
  std::vector<const FitField*> fields;
  for (const std::string& n : opts.params) fields.push_back(&fit_field(n));
  FitResult r;
  r.params = start;
  // Multiplicative moves need a positive start; a time of 0 starts at 0.1 us.
  for (const FitField* f : fields)
    if (!(r.params.*(f->ptr) > 0)) r.params.*(f->ptr) = f->is_efficiency ? 0.5 : 1e-7;
  r.objective_before = prep.objective(start);
  double best = prep.objective(r.params);
  double step = 0.5;
  while (step >= opts.min_step && r.sweeps < opts.max_sweeps) {
    ++r.sweeps;
    bool improved = false;
    for (const FitField* f : fields) {
      for (double dir : {1.0, -1.0}) {
        bool moved = false;
        for (int k = 0; k < 64; ++k) {
          CostParams trial = r.params;
          double v = trial.*(f->ptr) * std::exp(dir * step);
          if (f->is_efficiency) v = std::clamp(v, 1e-3, 1.0);
          if (v == trial.*(f->ptr)) break;
          trial.*(f->ptr) = v;
          const double e = prep.objective(trial);
          if (!(e < best)) break;
          best = e;
          r.params = trial;
          moved = improved = true;
        }
        if (moved) break;  // no need to try the other direction
      }
    }
    if (!improved) step *= 0.5;
  }
  r.objective_after = best;
  return r;
}

}  // namespace

FitResult fit_cost_params(const CalibSetup& s, const std::vector<CalibMeasurement>& ms,
                          const CostParams& start, const FitOptions& opts) {
  for (const std::string& n : opts.params) fit_field(n);
  if (std::none_of(ms.begin(), ms.end(), [](const CalibMeasurement& m) {
        return m.wall_s > 0 || !m.op_s.empty();
      }))
    throw ConfigError("calibrate: no measurement has a wall time or op times to fit", 2);
  return coordinate_search(prepare_measurements(s, ms, opts.huber_delta), start, opts);
}

FitResult fit_step_samples(const CalibSetup& s, const std::vector<StepSample>& samples,
                           const CostParams& start, const FitOptions& opts,
                           const std::vector<CalibMeasurement>& op_anchor) {
  for (const std::string& n : opts.params) fit_field(n);
  if (std::none_of(samples.begin(), samples.end(),
                   [](const StepSample& x) { return x.wall_s > 0 && x.weight > 0; }))
    throw ConfigError("calibrate: no measured step to fit", 2);
  std::vector<StepSample> xs = samples;
  std::vector<const std::vector<std::pair<std::string, double>>*> ops(xs.size(), nullptr);
  for (const CalibMeasurement& m : op_anchor) {
    if (m.op_s.empty()) continue;
    xs.push_back(StepSample{StepShape::of(shape_plan(m.point.seqs, s.block_size)), true,
                            m.kv_dtype, 0.0, 0.0});
    ops.push_back(&m.op_s);
  }
  return coordinate_search(Prepared(s, std::move(xs), std::move(ops), opts.huber_delta), start,
                           opts);
}

// ---------------------------------------------------------------------------------------------
// Report

std::string calibration_table(const CalibSetup& s, const std::vector<CalibMeasurement>& ms,
                              const CostParams& before, const CostParams& after) {
  std::string out;
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-34s %6s %10s %10s %10s %8s\n", "step", "mode", "measured",
                "pred.before", "pred.after", "error");
  out += buf;
  double sum_b = 0, sum_a = 0, worst = 0;
  int n = 0;
  for (const CalibMeasurement& m : ms) {
    if (!(m.wall_s > 0)) continue;
    const double b = predict_wall_s(s, before, m), a = predict_wall_s(s, after, m);
    const double eb = b / m.wall_s - 1, ea = a / m.wall_s - 1;
    sum_b += std::abs(eb);
    sum_a += std::abs(ea);
    worst = std::max(worst, std::abs(ea));
    ++n;
    std::snprintf(buf, sizeof buf, "%-34s %6s %8.3fms %8.3fms %8.3fms %+7.1f%%\n",
                  m.point.label.c_str(), m.eager ? "eager" : "graph", m.wall_s * 1e3, b * 1e3,
                  a * 1e3, 100 * ea);
    out += buf;
  }
  if (n > 0) {
    std::snprintf(buf, sizeof buf,
                  "mean |error|: %.1f%% before, %.1f%% after (worst after %.1f%%) over %d steps\n",
                  100 * sum_b / n, 100 * sum_a / n, 100 * worst, n);
    out += buf;
  }

  // Per-op device time summed over the op-profiled points against the fitted model's ops.
  std::vector<std::pair<std::string, std::pair<double, double>>> ops;  // name -> (meas, pred)
  for (const CalibMeasurement& m : ms) {
    if (m.op_s.empty()) continue;
    const CostModel cm(s.model, s.hw, after, s.weight_dtype, s.kv_dtype, 1, true);
    const StepCost c = cm.step_cost(shape_plan(m.point.seqs, s.block_size), true);
    for (const auto& [name, t] : m.op_s) {
      double pred = 0;
      for (const OpCost& o : c.ops)
        if (o.op == name) pred += o.seconds;
      auto it = std::find_if(ops.begin(), ops.end(), [&](const auto& e) { return e.first == name; });
      if (it == ops.end()) ops.push_back({name, {t, pred}});
      else it->second.first += t, it->second.second += pred;
    }
  }
  if (!ops.empty()) {
    std::snprintf(buf, sizeof buf, "\n%-16s %12s %12s %8s   (device time, summed over op-profiled steps)\n",
                  "op", "measured", "pred.after", "error");
    out += buf;
    for (const auto& [name, mp] : ops) {
      std::snprintf(buf, sizeof buf, "%-16s %10.3fms %10.3fms %+7.1f%%\n", name.c_str(),
                    mp.first * 1e3, mp.second * 1e3,
                    mp.first > 0 ? 100 * (mp.second / mp.first - 1) : 0.0);
      out += buf;
    }
  }
  std::snprintf(buf, sizeof buf, "\n%-28s %12s %12s\n", "params", "before", "after");
  out += buf;
  for (const FitField& f : kCostParamFields) {
    if (!fittable(f)) continue;
    std::snprintf(buf, sizeof buf, "  %-26s %12.4g %12.4g\n", f.name, before.*(f.ptr), after.*(f.ptr));
    out += buf;
  }
  return out;
}

}  // namespace twinfer
