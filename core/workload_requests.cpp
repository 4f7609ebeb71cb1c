// `--workload requests:PATH`: replays a twinfer requests.csv (the run's own per-request record),
// so a simulated twin sees exactly the arrivals and lengths a hardware run saw.
// The file is RFC 4180: the error column may be quoted and hold commas, quotes or line breaks,
// so records are split by a small quote-aware scanner that tracks the starting line number.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <ostream>
#include <string_view>

#include "core/error.h"
#include "core/workload.h"

namespace twinfer {

namespace {

constexpr int64_t kMaxLen = int64_t{1} << 24;  // same bound as the trace parsers

std::string shown(std::string_view v) {
  std::string out = "'";
  for (size_t i = 0; i < v.size() && i < 60; ++i) {
    const unsigned char c = static_cast<unsigned char>(v[i]);
    out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
  }
  if (v.size() > 60) out += "...";
  return out + "'";
}

// Splits one CSV record starting at `pos`; advances pos past its line break and `line` by the
// line breaks consumed. Quoted fields are unescaped into `fields`.
bool next_record(std::string_view text, size_t& pos, size_t& line,
                 std::vector<std::string>& fields, const std::string& source) {
  fields.clear();
  if (pos >= text.size()) return false;
  const size_t start_line = line;
  std::string cur;
  bool quoted = false, was_quoted = false;
  while (pos < text.size()) {
    const char c = text[pos++];
    if (quoted) {
      if (c == '"') {
        if (pos < text.size() && text[pos] == '"') {
          cur += '"';
          ++pos;
        } else {
          quoted = false;
        }
      } else {
        if (c == '\n') ++line;
        cur += c;
      }
      continue;
    }
    if (c == '"' && cur.empty() && !was_quoted) {
      quoted = was_quoted = true;
    } else if (c == ',') {
      fields.push_back(std::move(cur));
      cur.clear();
      was_quoted = false;
    } else if (c == '\n') {
      ++line;
      break;
    } else if (c != '\r' || (pos < text.size() && text[pos] != '\n')) {
      cur += c;
    }
  }
  if (quoted)
    throw ConfigError(source + ":" + std::to_string(start_line) +
                      ": unterminated quoted field (expected a closing '\"')");
  fields.push_back(std::move(cur));
  return true;
}

template <class T>
bool parse_int(std::string_view s, T& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

bool parse_real(std::string_view s, double& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && std::isfinite(out);
}

enum Col { kId, kStatus, kPromptLen, kOutputLen, kTargetLen, kArrival, kPriority, kHashBlock,
           kHashIds, kNumCols };
constexpr const char* kColNames[kNumCols] = {"id", "status", "prompt_len", "output_len",
                                             "target_len", "arrival_s", "priority",
                                             "hash_block_tokens", "hash_ids"};
constexpr int kNumRequired = kPriority;  // columns before kPriority are required

}  // namespace

std::vector<RequestSpec> parse_requests_csv(std::istream& in, const std::string& source) {
  std::string text;
  {
    char chunk[1 << 16];
    while (in.read(chunk, sizeof chunk) || in.gcount() > 0)
      text.append(chunk, static_cast<size_t>(in.gcount()));
  }
  size_t pos = 0, line = 1;
  std::vector<std::string> f;
  if (!next_record(text, pos, line, f, source) || (f.size() == 1 && f[0].empty()))
    throw ConfigError(source + ":1: empty file (expected a twinfer requests.csv header: id,status,"
                               "priority,prompt_len,output_len,target_len,arrival_s,...)");
  int col[kNumCols];
  std::fill(std::begin(col), std::end(col), -1);
  for (size_t i = 0; i < f.size(); ++i)
    for (int c = 0; c < kNumCols; ++c)
      if (f[i] == kColNames[c]) col[c] = static_cast<int>(i);
  for (int c = 0; c < kNumRequired; ++c)
    if (col[c] < 0)
      throw ConfigError(source + ":1: missing column '" + kColNames[c] +
                        "' (expected a twinfer requests.csv header with id, status, prompt_len, "
                        "output_len, target_len, arrival_s)");

  std::vector<RequestSpec> reqs;
  std::vector<RequestId> seen;
  for (;;) {
    const size_t at = line;
    if (!next_record(text, pos, line, f, source)) break;
    if (f.size() == 1 && f[0].empty()) continue;  // blank line
    const std::string where = source + ":" + std::to_string(at);
    auto cell = [&](int c) -> std::string_view {
      if (col[c] < 0) return {};
      if (static_cast<size_t>(col[c]) >= f.size())
        throw ConfigError(where + ": " + std::to_string(f.size()) + " fields (expected at least " +
                          std::to_string(col[c] + 1) + ", to column " + kColNames[c] + ")");
      return f[static_cast<size_t>(col[c])];
    };
    auto bad = [&](int c, const char* expected) {
      throw ConfigError(where + ": column " + kColNames[c] + ": bad value " + shown(cell(c)) +
                        " (expected " + expected + ")");
    };
    RequestSpec r;
    if (!parse_int(cell(kId), r.id) || r.id < 0) bad(kId, "a request id >= 0");
    const std::string_view st = cell(kStatus);
    const bool finished = st == "finished";
    if (!finished && st != "failed" && st != "waiting" && st != "running" && st != "swapped")
      bad(kStatus, "finished | failed | waiting | running | swapped");
    int64_t prompt = 0, produced = 0, target = 0;
    if (!parse_int(cell(kPromptLen), prompt) || prompt < 1 || prompt > kMaxLen)
      bad(kPromptLen, "tokens in [1, 16777216]");
    if (!parse_int(cell(kOutputLen), produced) || produced < 0 || produced > kMaxLen)
      bad(kOutputLen, "tokens in [0, 16777216]");
    if (!parse_int(cell(kTargetLen), target) || target < -1 || target > kMaxLen)
      bad(kTargetLen, "-1 (unknown) or tokens in [0, 16777216]");
    if (!parse_real(cell(kArrival), r.arrival_s) || r.arrival_s < 0)
      bad(kArrival, "seconds >= 0");
    if (col[kPriority] >= 0 && !parse_int(cell(kPriority), r.priority))
      bad(kPriority, "an integer");
    r.prompt_len = static_cast<int32_t>(prompt);
    r.output_len = static_cast<int32_t>(std::max<int64_t>(1, finished || target < 1 ? produced : target));
    r.sampling.max_tokens = r.output_len;
    r.sampling.ignore_eos = true;
    if (col[kHashIds] >= 0 && !cell(kHashIds).empty()) {
      int64_t hb = 0;
      if (!parse_int(cell(kHashBlock), hb) || hb < 1 || hb > kMaxLen)
        bad(kHashBlock, "tokens per hash id in [1, 16777216] when hash_ids is given");
      r.hash_block_tokens = static_cast<int32_t>(hb);
      std::string_view ids = cell(kHashIds);
      while (!ids.empty()) {
        const size_t sp = ids.find(' ');
        const std::string_view tok = ids.substr(0, sp);
        BlockHash h = 0;
        if (!parse_int(tok, h)) bad(kHashIds, "space-separated unsigned integers");
        r.hash_ids.push_back(h);
        ids = sp == std::string_view::npos ? std::string_view{} : ids.substr(sp + 1);
      }
    }
    seen.push_back(r.id);
    reqs.push_back(std::move(r));
  }
  std::sort(seen.begin(), seen.end());
  if (auto d = std::adjacent_find(seen.begin(), seen.end()); d != seen.end())
    throw ConfigError(source + ": request id " + std::to_string(*d) +
                      " appears twice (expected one row per request)");
  std::stable_sort(reqs.begin(), reqs.end(), [](const RequestSpec& a, const RequestSpec& b) {
    return a.arrival_s != b.arrival_s ? a.arrival_s < b.arrival_s : a.id < b.id;
  });
  for (size_t i = 0; i < reqs.size(); ++i) reqs[i].id = static_cast<RequestId>(i);
  return reqs;
}

void write_requests_csv(std::ostream& out, const std::vector<RequestSpec>& reqs) {
  const bool hashes = std::any_of(reqs.begin(), reqs.end(),
                                  [](const RequestSpec& r) { return !r.hash_ids.empty(); });
  out << "id,status,priority,prompt_len,output_len,target_len,arrival_s";
  if (hashes) out << ",hash_block_tokens,hash_ids";
  out << "\n";
  char buf[32];
  for (const RequestSpec& r : reqs) {
    // Shortest round-trip text, so a replay of the replay is bit-identical.
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, r.arrival_s);
    (void)ec;
    out << r.id << ",finished," << r.priority << ',' << r.prompt_len << ',' << r.output_len << ','
        << r.output_len << ',' << std::string_view(buf, static_cast<size_t>(end - buf));
    if (hashes) {
      out << ',' << (r.hash_ids.empty() ? 0 : r.hash_block_tokens) << ',';
      for (size_t i = 0; i < r.hash_ids.size(); ++i) out << (i ? " " : "") << r.hash_ids[i];
    }
    out << '\n';
  }
}

}  // namespace twinfer
