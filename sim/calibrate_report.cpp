// Per-step error report by step kind (sim/calibrate_report.h).
#include "sim/calibrate_report.h"

#include <algorithm>
#include <cstdio>
#include <map>

namespace twinfer {

namespace {

struct Acc {
  std::vector<double> err;
  double pred = 0, meas = 0;
  std::vector<const RunSteps*> runs;
};

// Costs samples with one CostModel per (KV dtype, eager) pair, built on first use.
class Predictor {
 public:
  Predictor(const CalibSetup& s, const CostParams& p) : s_(s), p_(p) {}
  double operator()(const StepSample& x) {
    for (Entry& e : models_)
      if (e.kv == x.kv_dtype && e.eager == x.eager) return sample_cost(e.model, x).total_s;
    models_.push_back(Entry{x.kv_dtype, x.eager,
                            CostModel(s_.model, s_.hw, p_, s_.weight_dtype, x.kv_dtype, 1, x.eager)});
    return sample_cost(models_.back().model, x).total_s;
  }

 private:
  struct Entry {
    DType kv;
    bool eager;
    CostModel model;
  };
  const CalibSetup& s_;
  const CostParams& p_;
  std::vector<Entry> models_;
};

double quantile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

GroupError finish(const std::string& name, Acc& a, double all_meas) {
  GroupError g;
  g.group = name;
  g.steps = static_cast<int64_t>(a.err.size());
  std::sort(a.runs.begin(), a.runs.end());
  g.runs = static_cast<int>(std::unique(a.runs.begin(), a.runs.end()) - a.runs.begin());
  g.time_share = all_meas > 0 ? a.meas / all_meas : 0;
  g.median = quantile(a.err, 0.5);
  g.p10 = quantile(a.err, 0.1);
  g.p90 = quantile(a.err, 0.9);
  g.total = a.meas > 0 ? a.pred / a.meas - 1 : 0;
  return g;
}

std::string kind_of(const StepShape& s) {
  if (s.prefill_tokens == 0) return "decode";
  if (s.decode_tokens + s.padding_seqs == 0) return "prefill";
  return "mixed";
}

void table(std::string& out, const std::vector<GroupError>& gs, bool show_runs) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-40s %6s %4s %7s | %8s %8s %8s | %8s\n", "group", "steps",
                show_runs ? "runs" : "", "time%", "median", "p10", "p90", "sum");
  out += buf;
  for (const GroupError& g : gs) {
    char runs[16] = "";
    if (show_runs) std::snprintf(runs, sizeof runs, "%d", g.runs);
    std::snprintf(buf, sizeof buf, "%-40s %6lld %4s %6.1f%% | %+7.1f%% %+7.1f%% %+7.1f%% | %+7.1f%%\n",
                  g.group.c_str(), static_cast<long long>(g.steps), runs, 100 * g.time_share,
                  100 * g.median, 100 * g.p10, 100 * g.p90, 100 * g.total);
    out += buf;
  }
}

}  // namespace

std::string step_group(const StepSample& x) {
  const StepShape& s = x.shape;
  const std::string kind = kind_of(s);
  std::string g = kind;
  g += (!x.eager && kind == "decode") ? " graph" : " eager";
  if (kind != "prefill") {
    const int b = s.decode_tokens + s.padding_seqs;
    g += b <= 2 ? " b1-2" : b <= 8 ? " b3-8" : b <= 32 ? " b9-32" : b <= 128 ? " b33-128" : " b129+";
  }
  if (kind != "decode") {
    const int t = s.prefill_tokens;
    g += t <= 128 ? " t1-128" : t <= 512 ? " t129-512" : t <= 2048 ? " t513-2048" : " t2049+";
    if (s.prefill_context > s.prefill_tokens) g += " cached";
  }
  g += x.kv_dtype == DType::bf16 ? " bf16" : " fp8";
  return g;
}

std::vector<GroupError> group_errors(const CalibSetup& s, const CostParams& p,
                                     const std::vector<RunSteps>& runs) {
  Predictor pred(s, p);
  std::map<std::string, Acc> acc;
  double all = 0;
  for (const RunSteps& r : runs)
    for (const StepSample& x : r.samples) {
      const double t = pred(x);
      Acc& a = acc[step_group(x)];
      a.err.push_back(t / x.wall_s - 1);
      a.pred += t;
      a.meas += x.wall_s;
      a.runs.push_back(&r);
      all += x.wall_s;
    }
  std::vector<GroupError> out;
  for (auto& [name, a] : acc) out.push_back(finish(name, a, all));
  return out;
}

std::string step_error_report(const CalibSetup& s, const CostParams& p,
                              const std::vector<RunSteps>& runs, const std::vector<bool>& fitted) {
  std::string out =
      "Step-time error by step kind, all runs: error = predicted / measured - 1 per step (a step's\n"
      "measured time includes the host gap before the next step); time% = the group's share of\n"
      "the measured time; sum = error of the group's summed time.\n\n";
  table(out, group_errors(s, p, runs), true);
  out += "\nPer run, by kind:\n\n";
  Predictor pred(s, p);
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunSteps& r = runs[i];
    std::map<std::string, Acc> acc;
    double all = 0;
    for (const StepSample& x : r.samples) {
      const double t = pred(x);
      Acc& a = acc[kind_of(x.shape)];
      a.err.push_back(t / x.wall_s - 1);
      a.pred += t;
      a.meas += x.wall_s;
      all += x.wall_s;
    }
    std::vector<GroupError> gs;
    for (auto& [name, a] : acc) gs.push_back(finish(r.name + " " + name, a, all));
    out += r.name + (i < fitted.size() && fitted[i] ? " (calibration)\n" : " (held-out)\n");
    table(out, gs, false);
    out += "\n";
  }
  return out;
}

}  // namespace twinfer
