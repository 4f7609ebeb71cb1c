// Workload loading: trace parsers (Azure CSV, Mooncake JSONL), length distributions, arrival
// processes and the synthetic generator. Semantics are documented in docs/workloads.md.
//
// Randomness: std::mt19937_64 (its output sequence is fixed by the standard) feeding our own
// transforms (Box-Muller, inverse CDF, Marsaglia-Tsang, rejection-inversion), because the
// <random> distributions differ between standard libraries and runs must reproduce anywhere.
#include "core/workload.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <random>
#include <string_view>

#include "core/error.h"
#include "core/json.h"

namespace twinfer {

namespace {

// Upper bound of any sampled or parsed length: far above any model's context, and small enough
// that hash_ids for a synthetic prompt stay bounded (2^20 blocks of 16 tokens).
constexpr int64_t kMaxLen = int64_t{1} << 24;
// Synthetic per-request (unshared) block hashes start here, far above any shared prefix id.
constexpr BlockHash kUniqueHashBase = BlockHash{1} << 40;
constexpr int32_t kMooncakeBlockTokens = 512;
constexpr int32_t kSyntheticBlockTokens = 16;

constexpr std::string_view kAzureCols[3] = {"TIMESTAMP", "ContextTokens", "GeneratedTokens"};
constexpr const char* kAcceptedWorkloads =
    "expected a .csv trace (Azure form: TIMESTAMP,ContextTokens,GeneratedTokens), a .jsonl trace "
    "(Mooncake form: timestamp, input_length, output_length, hash_ids), requests:PATH (a "
    "twinfer requests.csv) or 'synthetic'";
constexpr const char* kLengthForms =
    "fixed:N | uniform:LO:HI | lognormal:MEDIAN:SIGMA | zipf:LO:HI:S";

// A value quoted for an error message; long or binary input is cut and made printable so a
// hostile file cannot produce an unreadable message.
std::string quoted(std::string_view v) {
  constexpr size_t kMax = 60;
  std::string out = "'";
  for (size_t i = 0; i < v.size() && i < kMax; ++i) {
    unsigned char c = static_cast<unsigned char>(v[i]);
    out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
  }
  if (v.size() > kMax) out += "...";
  out += "'";
  return out;
}

std::string where(const std::string& source, size_t line) {
  return source + ":" + std::to_string(line);
}

std::string read_all(std::istream& in) {
  std::string buf;
  char chunk[1 << 16];
  while (in.read(chunk, sizeof chunk) || in.gcount() > 0)
    buf.append(chunk, static_cast<size_t>(in.gcount()));
  return buf;
}

// Calls f(line_number, line) for each line (1-based), without the '\n' or a trailing '\r'.
template <class F>
void for_each_line(std::string_view text, F&& f) {
  size_t line_no = 0, pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    f(++line_no, line);
    pos = end + 1;
  }
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool blank(std::string_view s) { return trim(s).empty(); }

// ---------------------------------------------------------------------------------------------
// Timestamps `YYYY-MM-DD HH:MM:SS[.f{1,9}]` as whole seconds plus nanoseconds; only differences
// matter, so the epoch is 0001-01-01 (proleptic Gregorian).

struct Stamp {
  int64_t sec = 0;
  int32_t nsec = 0;
  bool operator<(const Stamp& o) const { return sec != o.sec ? sec < o.sec : nsec < o.nsec; }
};

bool digits(std::string_view s, size_t pos, size_t n, int& out) {
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  out = v;
  return true;
}

bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

bool parse_stamp(std::string_view s, Stamp& out) {
  if (s.size() < 19 || s[4] != '-' || s[7] != '-' || (s[10] != ' ' && s[10] != 'T') ||
      s[13] != ':' || s[16] != ':')
    return false;
  int y, mo, d, h, mi, sec;
  if (!digits(s, 0, 4, y) || !digits(s, 5, 2, mo) || !digits(s, 8, 2, d) ||
      !digits(s, 11, 2, h) || !digits(s, 14, 2, mi) || !digits(s, 17, 2, sec))
    return false;
  static constexpr int kMonthDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  static constexpr int kDaysBefore[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
  if (y < 1 || mo < 1 || mo > 12 || h > 23 || mi > 59 || sec > 59) return false;
  int month_days = kMonthDays[mo - 1] + (mo == 2 && leap(y) ? 1 : 0);
  if (d < 1 || d > month_days) return false;
  int32_t nsec = 0;
  if (s.size() > 19) {
    size_t nfrac = s.size() - 20;
    if (s[19] != '.' || nfrac < 1 || nfrac > 9) return false;
    int frac;
    if (!digits(s, 20, nfrac, frac)) return false;
    for (size_t i = nfrac; i < 9; ++i) frac *= 10;
    nsec = frac;
  }
  int64_t yb = y - 1;  // whole years before y
  int64_t days = 365 * yb + yb / 4 - yb / 100 + yb / 400 + kDaysBefore[mo - 1] + (d - 1) +
                 (mo > 2 && leap(y) ? 1 : 0);
  out.sec = days * 86400 + h * 3600 + mi * 60 + sec;
  out.nsec = nsec;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Shared by both parsers: clamp lengths, fill sampling, then order by arrival (stable, so ties
// keep file order) and number 0..n-1.

RequestSpec make_spec(int64_t prompt_len, int64_t output_len) {
  RequestSpec r;
  r.prompt_len = static_cast<int32_t>(std::max<int64_t>(1, prompt_len));
  r.output_len = static_cast<int32_t>(std::max<int64_t>(1, output_len));
  r.sampling.max_tokens = r.output_len;
  r.sampling.ignore_eos = true;
  return r;
}

void order_by_arrival(std::vector<RequestSpec>& reqs) {
  auto earlier = [](const RequestSpec& a, const RequestSpec& b) {
    return a.arrival_s < b.arrival_s;
  };
  if (!std::is_sorted(reqs.begin(), reqs.end(), earlier))
    std::stable_sort(reqs.begin(), reqs.end(), earlier);
  for (size_t i = 0; i < reqs.size(); ++i) reqs[i].id = static_cast<RequestId>(i);
}

// A token count column: a non-negative integer that fits the length bound.
bool parse_count(std::string_view s, int64_t& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && out >= 0 && out <= kMaxLen;
}

[[noreturn]] void bad_value(const std::string& at, const char* kind, std::string_view name,
                            std::string_view value, const char* expected) {
  throw ConfigError(at + ": " + kind + " " + std::string(name) + ": bad value " + quoted(value) +
                    " (expected " + expected + ")");
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::vector<RequestSpec> parse_azure_csv(std::istream& in, const std::string& source) {
  const std::string text = read_all(in);
  std::vector<RequestSpec> reqs;
  std::vector<Stamp> stamps;
  reqs.reserve(text.size() / 36 + 1);  // a typical row is ~36 bytes
  stamps.reserve(text.size() / 36 + 1);
  bool have_header = false;
  const std::string expected_header = "header 'TIMESTAMP,ContextTokens,GeneratedTokens'";

  for_each_line(text, [&](size_t line_no, std::string_view line) {
    if (!have_header) {
      if (line.substr(0, 3) == "\xEF\xBB\xBF") line.remove_prefix(3);  // UTF-8 BOM
      // Exactly the three Azure columns, in order; name the first one that differs.
      std::string_view names[4];
      size_t count = 0, pos = 0;
      for (; count < 4; ++count) {
        size_t comma = line.find(',', pos);
        names[count] = trim(line.substr(pos, comma == line.npos ? line.npos : comma - pos));
        if (comma == line.npos) { ++count; break; }
        pos = comma + 1;
      }
      for (size_t col = 0; col < 3; ++col) {
        if (col >= count)
          throw ConfigError(where(source, line_no) + ": column " + std::string(kAzureCols[col]) +
                            ": missing from header " + quoted(line) + " (expected " +
                            expected_header + ")");
        if (names[col] != kAzureCols[col])
          throw ConfigError(where(source, line_no) + ": column " + std::to_string(col + 1) +
                            ": bad header name " + quoted(names[col]) + " (expected '" +
                            std::string(kAzureCols[col]) + "'; " + expected_header + ")");
      }
      if (count > 3)
        throw ConfigError(where(source, line_no) + ": column 4: bad header name " +
                          quoted(names[3]) + " (expected only " + expected_header + ")");
      have_header = true;
      return;
    }
    if (blank(line)) return;

    std::string_view field[3];
    size_t pos = 0;
    for (size_t col = 0; col < 3; ++col) {
      size_t comma = line.find(',', pos);
      if (col < 2 && comma == line.npos)
        throw ConfigError(where(source, line_no) + ": column " + std::string(kAzureCols[col + 1]) +
                          ": missing; row " + quoted(line) + " has " + std::to_string(col + 1) +
                          " of 3 columns (expected TIMESTAMP,ContextTokens,GeneratedTokens)");
      if (col == 2 && comma != line.npos)
        throw ConfigError(where(source, line_no) + ": column 4: bad value " +
                          quoted(line.substr(comma + 1)) + " (expected 3 columns: " +
                          "TIMESTAMP,ContextTokens,GeneratedTokens)");
      field[col] = trim(line.substr(pos, comma == line.npos ? line.npos : comma - pos));
      pos = comma + 1;
    }
    Stamp st;
    if (!parse_stamp(field[0], st))
      bad_value(where(source, line_no), "column", kAzureCols[0], field[0],
                "a date-time YYYY-MM-DD HH:MM:SS[.fffffff]");
    int64_t ctx, gen;
    if (!parse_count(field[1], ctx))
      bad_value(where(source, line_no), "column", kAzureCols[1], field[1],
                "an integer in [0, 16777216]");
    if (!parse_count(field[2], gen))
      bad_value(where(source, line_no), "column", kAzureCols[2], field[2],
                "an integer in [0, 16777216]");
    reqs.push_back(make_spec(ctx, gen));
    stamps.push_back(st);
  });
  if (!have_header)
    throw ConfigError(source + ": empty file (expected header "
                      "'TIMESTAMP,ContextTokens,GeneratedTokens' and one row per request)");

  // Arrivals count from the earliest row (the first row of a time-ordered file).
  if (!stamps.empty()) {
    Stamp t0 = *std::min_element(stamps.begin(), stamps.end());
    for (size_t i = 0; i < reqs.size(); ++i)
      reqs[i].arrival_s = static_cast<double>(stamps[i].sec - t0.sec) +
                          static_cast<double>(stamps[i].nsec - t0.nsec) * 1e-9;
  }
  order_by_arrival(reqs);
  return reqs;
}

namespace {

// A Mooncake field that must be an integer in [0, max] (numbers like 12.0 are accepted).
bool json_count(const Json& v, int64_t max, int64_t& out) {
  if (!v.is_number()) return false;
  double d = v.as_number();
  if (!(d >= 0) || d > static_cast<double>(max) || d != std::floor(d)) return false;
  out = static_cast<int64_t>(d);
  return true;
}

}  // namespace

std::vector<RequestSpec> parse_mooncake_jsonl(std::istream& in, const std::string& source) {
  const std::string text = read_all(in);
  std::vector<RequestSpec> reqs;
  std::vector<double> ms;
  const char* fields = "a JSON object with timestamp, input_length, output_length, hash_ids";

  for_each_line(text, [&](size_t line_no, std::string_view line) {
    if (blank(line)) return;
    const std::string at = where(source, line_no);
    Json j;
    try {
      j = Json::parse(line, "L");
    } catch (const JsonError& e) {
      // The parser reports "L:1:COL: msg" for this one-line document; re-anchor it to the file.
      std::string_view msg = e.what();
      if (msg.substr(0, 4) == "L:1:") msg.remove_prefix(4);
      throw ConfigError(at + ":" + std::string(msg) + " (invalid JSON in " + quoted(line) +
                        "; expected " + fields + ")");
    }
    if (!j.is_object())
      throw ConfigError(at + ": bad value " + quoted(j.dump()) + " (expected " + fields + ")");

    auto need = [&](const char* name) -> const Json& {
      const Json* v = j.get(name);
      if (!v)
        throw ConfigError(at + ": field " + std::string(name) + ": missing in " + quoted(line) +
                          " (expected " + fields + ")");
      return *v;
    };
    const Json& ts = need("timestamp");
    if (!ts.is_number() || !(ts.as_number() >= 0) || !std::isfinite(ts.as_number()))
      bad_value(at, "field", "timestamp", ts.dump(), "a non-negative number of milliseconds");
    int64_t input, output;
    const Json& in_len = need("input_length");
    if (!json_count(in_len, kMaxLen, input))
      bad_value(at, "field", "input_length", in_len.dump(), "an integer in [0, 16777216]");
    const Json& out_len = need("output_length");
    if (!json_count(out_len, kMaxLen, output))
      bad_value(at, "field", "output_length", out_len.dump(), "an integer in [0, 16777216]");

    RequestSpec r = make_spec(input, output);
    // hash_ids are optional: a trace without them replays lengths and timing only.
    if (const Json* h = j.get("hash_ids")) {
      if (!h->is_array())
        bad_value(at, "field", "hash_ids", h->dump(), "an array of non-negative integers");
      const Json::Array& ids = h->as_array();
      r.hash_ids.reserve(ids.size());
      for (const Json& id : ids) {
        int64_t v;
        if (!json_count(id, int64_t{1} << 53, v))
          bad_value(at, "field", "hash_ids", id.dump(), "an array of non-negative integers");
        r.hash_ids.push_back(static_cast<BlockHash>(v));
      }
      r.hash_block_tokens = kMooncakeBlockTokens;
    }
    reqs.push_back(std::move(r));
    ms.push_back(ts.as_number());
  });

  if (!ms.empty()) {
    double t0 = *std::min_element(ms.begin(), ms.end());
    for (size_t i = 0; i < reqs.size(); ++i) reqs[i].arrival_s = (ms[i] - t0) / 1000.0;
  }
  order_by_arrival(reqs);
  return reqs;
}

// ---------------------------------------------------------------------------------------------
// Length distributions.

LengthDist LengthDist::parse(const std::string& text, const std::string& flag) {
  auto fail = [&](const std::string& why) -> ConfigError {
    return ConfigError(flag + ": bad value " + quoted(text) + ": " + why + " (expected " +
                           kLengthForms + ")",
                       2);
  };
  std::vector<std::string_view> parts;
  std::string_view rest = text;
  for (;;) {
    size_t c = rest.find(':');
    parts.push_back(rest.substr(0, c));
    if (c == rest.npos) break;
    rest.remove_prefix(c + 1);
  }
  auto number = [&](size_t i, const char* name) {
    double v = 0;
    std::string_view s = parts[i];
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || p != s.data() + s.size() || !std::isfinite(v))
      throw fail(std::string(name) + " " + quoted(s) + " is not a number");
    return v;
  };
  auto length = [&](size_t i, const char* name) {
    double v = number(i, name);
    if (v != std::floor(v) || v < 1 || v > static_cast<double>(kMaxLen))
      throw fail(std::string(name) + " must be an integer in [1, 16777216]");
    return v;
  };
  auto arity = [&](size_t n) {
    if (parts.size() != n + 1)
      throw fail(std::string(parts[0]) + " takes " + std::to_string(n) + " value(s)");
  };

  LengthDist d;
  const std::string_view kind = parts[0];
  if (kind == "fixed") {
    arity(1);
    d.kind = Kind::fixed;
    d.a = length(1, "N");
  } else if (kind == "uniform") {
    arity(2);
    d.kind = Kind::uniform;
    d.a = length(1, "LO");
    d.b = length(2, "HI");
    if (d.a > d.b) throw fail("LO must be <= HI");
  } else if (kind == "lognormal") {
    arity(2);
    d.kind = Kind::lognormal;
    d.a = number(1, "MEDIAN");
    d.b = number(2, "SIGMA");
    if (!(d.a > 0)) throw fail("MEDIAN must be > 0");
    if (!(d.b >= 0) || d.b > 10) throw fail("SIGMA must be in [0, 10]");
  } else if (kind == "zipf") {
    arity(3);
    d.kind = Kind::zipf;
    d.a = length(1, "LO");
    d.b = length(2, "HI");
    d.c = number(3, "S");
    if (d.a > d.b) throw fail("LO must be <= HI");
    if (!(d.c >= 0) || d.c > 100) throw fail("S must be in [0, 100]");
  } else {
    throw fail("unknown distribution " + quoted(kind));
  }
  return d;
}

namespace {

// mt19937_64 with portable transforms. Doubles take the top 53 bits of one draw.
class Rng {
 public:
  explicit Rng(uint64_t seed) : g_(seed) {}
  double uniform() { return static_cast<double>(g_() >> 11) * 0x1.0p-53; }            // [0,1)
  double open01() { return (static_cast<double>(g_() >> 11) + 0.5) * 0x1.0p-53; }     // (0,1)
  double exponential() { return -std::log(open01()); }  // mean 1
  // Box-Muller; one of the pair is dropped so every call consumes exactly two draws.
  double normal() {
    double r = std::sqrt(-2.0 * std::log(open01()));
    return r * std::cos(6.283185307179586 * uniform());
  }
  // Gamma(shape k, scale 1), Marsaglia-Tsang; shape < 1 boosted through Gamma(k+1) * U^(1/k).
  double gamma(double k) {
    if (k < 1.0) return gamma(k + 1.0) * std::pow(open01(), 1.0 / k);
    const double d = k - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
    for (;;) {
      double x = normal(), v = 1.0 + c * x;
      if (v <= 0) continue;
      v = v * v * v;
      if (std::log(open01()) < 0.5 * x * x + d - d * v + d * std::log(v)) return d * v;
    }
  }

 private:
  std::mt19937_64 g_;
};

// Independent streams from one seed, so e.g. changing --output-len leaves arrivals unchanged.
uint64_t stream_seed(uint64_t seed, uint64_t stream) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (stream + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

int32_t clamp_len(double x) {
  if (!(x >= 1)) return 1;  // also catches NaN
  if (x >= static_cast<double>(kMaxLen)) return static_cast<int32_t>(kMaxLen);
  return static_cast<int32_t>(std::llround(x));
}

// Draws integers from a LengthDist. Zipf: P(k) proportional to k^-S on [LO, HI], sampled by
// rejection-inversion (Hoermann & Derflinger 1996): O(1) per draw with no table, so the range
// can be wide. H is the integral of h(x) = x^-S, written via expm1/log1p to stay accurate at S=1.
class LengthSampler {
 public:
  explicit LengthSampler(const LengthDist& d) : d_(d) {
    if (d_.kind == LengthDist::Kind::zipf && d_.a < d_.b) {
      h_lo_ = H(d_.a + 0.5) - h(d_.a);
      h_hi_ = H(d_.b + 0.5);
      squeeze_ = d_.a + 1 - Hinv(H(d_.a + 1.5) - h(d_.a + 1));
    }
  }

  int32_t operator()(Rng& r) const {
    switch (d_.kind) {
      case LengthDist::Kind::fixed:
        return static_cast<int32_t>(d_.a);
      case LengthDist::Kind::uniform: {
        double span = d_.b - d_.a + 1;
        return static_cast<int32_t>(std::min(d_.b, d_.a + std::floor(r.uniform() * span)));
      }
      case LengthDist::Kind::lognormal:
        return clamp_len(d_.a * std::exp(d_.b * r.normal()));
      case LengthDist::Kind::zipf:
        return zipf(r);
    }
    return 1;
  }

 private:
  LengthDist d_;
  double h_lo_ = 0, h_hi_ = 0, squeeze_ = 0;

  static double expm1_over(double x) { return std::abs(x) > 1e-8 ? std::expm1(x) / x : 1 + x / 2; }
  static double log1p_over(double x) { return std::abs(x) > 1e-8 ? std::log1p(x) / x : 1 - x / 2; }
  double h(double x) const { return std::exp(-d_.c * std::log(x)); }
  double H(double x) const {
    double lx = std::log(x);
    return lx * expm1_over((1 - d_.c) * lx);
  }
  double Hinv(double y) const { return std::exp(y * log1p_over((1 - d_.c) * y)); }

  int32_t zipf(Rng& r) const {
    if (d_.a == d_.b) return static_cast<int32_t>(d_.a);
    for (;;) {
      // u spans the area under the hat; each k owns an accept slice of width exactly h(k).
      double u = h_hi_ + r.uniform() * (h_lo_ - h_hi_);
      double x = Hinv(u);
      double k = std::clamp(std::floor(x + 0.5), d_.a, d_.b);
      if (k - x <= squeeze_ || u >= H(k + 0.5) - h(k)) return static_cast<int32_t>(k);
    }
  }
};

// ---------------------------------------------------------------------------------------------

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<RequestSpec> read_trace(const std::string& spec) {
  if (spec.rfind(kRequestsWorkloadPrefix, 0) == 0) {
    const std::string path = spec.substr(std::string_view(kRequestsWorkloadPrefix).size());
    std::ifstream f(path, std::ios::binary);
    if (!f) throw ConfigError("--workload: cannot open " + quoted(path) + " (requests:PATH names a twinfer requests.csv)", 2);
    auto reqs = parse_requests_csv(f, path);
    if (reqs.empty()) throw ConfigError(path + ": no request rows (expected at least one request)");
    return reqs;
  }
  const std::string& path = spec;
  const bool csv = ends_with(path, ".csv"), jsonl = ends_with(path, ".jsonl");
  if (!csv && !jsonl)
    throw ConfigError("--workload: unknown workload form " + quoted(path) + " (" +
                          kAcceptedWorkloads + ")",
                      2);
  std::ifstream f(path, std::ios::binary);
  if (!f)
    throw ConfigError("--workload: cannot open " + quoted(path) + " (" + kAcceptedWorkloads + ")",
                      2);
  auto reqs = csv ? parse_azure_csv(f, path) : parse_mooncake_jsonl(f, path);
  if (reqs.empty()) throw ConfigError(path + ": no request rows (expected at least one request)");
  return reqs;
}

std::vector<RequestSpec> synthesize(const WorkloadConfig& w, uint64_t seed, int64_t n) {
  const LengthSampler input(LengthDist::parse(w.input_len, "--input-len"));
  const LengthSampler output(LengthDist::parse(w.output_len, "--output-len"));
  Rng in_rng(stream_seed(seed, 1)), out_rng(stream_seed(seed, 2));
  const int32_t prefix = w.prefix_len;
  const int32_t shared_blocks = prefix / kSyntheticBlockTokens;
  BlockHash next_unique = kUniqueHashBase;

  std::vector<RequestSpec> reqs(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    RequestSpec& r = reqs[static_cast<size_t>(i)];
    r.id = i;
    r.prompt_len = std::max(input(in_rng), prefix);
    r.output_len = output(out_rng);
    r.sampling.max_tokens = r.output_len;
    r.sampling.ignore_eos = true;
    if (prefix > 0) {
      // Blocks cover the whole prompt (the last may be partial, as in Mooncake's hash_ids);
      // only whole prefix blocks are shared.
      int32_t blocks = (r.prompt_len + kSyntheticBlockTokens - 1) / kSyntheticBlockTokens;
      r.hash_block_tokens = kSyntheticBlockTokens;
      r.hash_ids.resize(static_cast<size_t>(blocks));
      for (int32_t b = 0; b < blocks; ++b)
        r.hash_ids[static_cast<size_t>(b)] =
            b < shared_blocks ? static_cast<BlockHash>(b) : next_unique++;
    }
  }
  return reqs;
}

// Redraws arrivals in the current order: first request at 0, then i.i.d. gaps of mean 1/rate
// (exponential for poisson; gamma with shape = burstiness for gamma).
void draw_arrivals(std::vector<RequestSpec>& reqs, bool gamma, double rate, double burstiness,
                   uint64_t seed) {
  Rng rng(stream_seed(seed, 0));
  double t = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    if (i > 0)
      t += gamma ? rng.gamma(burstiness) / (burstiness * rate) : rng.exponential() / rate;
    reqs[i].arrival_s = t;
  }
}

}  // namespace

std::vector<RequestSpec> load_workload(const WorkloadConfig& w, uint64_t seed) {
  const std::string& arrival = w.arrival;
  if (arrival != "trace" && arrival != "offline" && arrival != "poisson" && arrival != "gamma")
    throw ConfigError("--arrival: bad value " + quoted(arrival) +
                          " (expected trace | offline | poisson | gamma)",
                      2);
  if (!std::isfinite(w.rate) || w.rate < 0)
    throw ConfigError("--rate: bad value " + std::to_string(w.rate) +
                          " (expected requests/s >= 0)", 2);
  if (!std::isfinite(w.time_scale) || w.time_scale <= 0)
    throw ConfigError("--time-scale: bad value " + std::to_string(w.time_scale) +
                          " (expected a number > 0; use --arrival offline for all at t=0)", 2);
  if (w.max_requests < 0)
    throw ConfigError("--max-requests: bad value " + std::to_string(w.max_requests) +
                          " (expected >= 0; 0 means all)", 2);
  const bool synthetic = w.workload == "synthetic";
  const bool redraw = arrival == "poisson" || arrival == "gamma" || (synthetic && arrival == "trace");
  if (redraw && w.rate <= 0)
    throw ConfigError("--rate: must be > 0 for " +
                          std::string(synthetic && arrival == "trace" ? "synthetic (poisson)"
                                                                      : arrival) +
                          " arrivals (or use --arrival offline)", 2);
  if (arrival == "gamma" && (!std::isfinite(w.burstiness) || w.burstiness <= 0))
    throw ConfigError("--burstiness: bad value " + std::to_string(w.burstiness) +
                          " (expected a gamma shape > 0; 1 = poisson)", 2);

  std::vector<RequestSpec> reqs;
  if (synthetic) {
    if (w.num_requests <= 0)
      throw ConfigError("--num-requests: bad value " + std::to_string(w.num_requests) +
                            " (expected > 0 for a synthetic workload)", 2);
    if (w.prefix_len < 0 || w.prefix_len > kMaxLen)
      throw ConfigError("--prefix-len: bad value " + std::to_string(w.prefix_len) +
                            " (expected tokens in [0, 16777216])", 2);
    int64_t n = w.max_requests > 0 ? std::min(w.num_requests, w.max_requests) : w.num_requests;
    reqs = synthesize(w, seed, n);
  } else {
    reqs = read_trace(w.workload);
    if (w.max_requests > 0 && static_cast<int64_t>(reqs.size()) > w.max_requests)
      reqs.resize(static_cast<size_t>(w.max_requests));
    if (w.time_scale != 1.0)
      for (RequestSpec& r : reqs) r.arrival_s *= w.time_scale;
  }

  if (arrival == "offline") {
    for (RequestSpec& r : reqs) r.arrival_s = 0;
  } else if (redraw) {
    draw_arrivals(reqs, arrival == "gamma", w.rate, w.burstiness, seed);
  }
  return reqs;
}

}  // namespace twinfer
