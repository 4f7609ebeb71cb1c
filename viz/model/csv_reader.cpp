#include "viz/model/csv_reader.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "core/error.h"

namespace twinfer::viz {

std::string read_file_bytes(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw ConfigError(path + ": cannot open: " + std::strerror(errno));
  std::string out;
  // One read sized from the file; a growing loop covers files that change size meanwhile.
  if (std::fseek(f, 0, SEEK_END) == 0) {
    long n = std::ftell(f);
    if (n > 0) out.reserve(static_cast<size_t>(n));
    std::rewind(f);
  }
  char buf[1 << 16];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, got);
  const bool bad = std::ferror(f);
  std::fclose(f);
  if (bad) throw ConfigError(path + ": read error");
  return out;
}

bool parse_i64(std::string_view s, int64_t& v) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size();
}

CsvReader::CsvReader(std::string_view text, std::string file) : text_(text), file_(std::move(file)) {}

void CsvReader::fail_row(const std::string& why) const {
  throw ConfigError(file_ + ":" + std::to_string(line_) + ": " + why);
}

void CsvReader::fail(int col, std::string_view expected) const {
  std::string v(raw(col).substr(0, 60));
  fail_row("column " + std::string(names_[static_cast<size_t>(col)]) + ": bad value '" + v +
           "' (expected " + std::string(expected) + ")");
}

// Splits one line (without its '\n') into fields; returns the field count, or kMaxCols + 1
// when there are more fields than the reader holds.
int CsvReader::split(std::string_view row) {
  int n = 0;
  size_t i = 0;
  while (true) {
    if (n == kMaxCols) return kMaxCols + 1;
    quoted_[n] = false;
    if (i < row.size() && row[i] == '"') {
      // Quoted field: runs to the quote that is not doubled.
      size_t j = i + 1;
      while (true) {
        j = row.find('"', j);
        if (j == std::string_view::npos) fail_row("unterminated quoted field");
        if (j + 1 < row.size() && row[j + 1] == '"') {
          j += 2;
          continue;
        }
        break;
      }
      f_[static_cast<size_t>(n)] = row.substr(i + 1, j - i - 1);
      quoted_[n] = true;
      ++n;
      i = j + 1;
      if (i == row.size()) return n;
      if (row[i] != ',') fail_row("text after a closing quote");
      ++i;
      continue;
    }
    size_t k = row.find(',', i);
    if (k == std::string_view::npos) {
      f_[static_cast<size_t>(n++)] = row.substr(i);
      return n;
    }
    f_[static_cast<size_t>(n++)] = row.substr(i, k - i);
    i = k + 1;
  }
}

void CsvReader::expect_header(std::initializer_list<std::string_view> cols) {
  std::string want;
  for (std::string_view c : cols) {
    if (!want.empty()) want += ',';
    want += c;
  }
  line_ = 1;
  const size_t nl = text_.find('\n');
  if (text_.empty()) throw ConfigError(file_ + ": empty file (expected the header " + want + ")");
  std::string_view head = text_.substr(0, nl);
  if (!head.empty() && head.back() == '\r') head.remove_suffix(1);
  if (head != want)
    throw ConfigError(file_ + ":1: unexpected header '" + std::string(head.substr(0, 200)) +
                      "' (expected " + want + ")");
  ncols_ = static_cast<int>(cols.size());
  size_t i = 0;
  for (std::string_view c : cols) names_[i++] = c;
  pos_ = nl == std::string_view::npos ? text_.size() : nl + 1;
}

bool CsvReader::next() {
  if (pos_ >= text_.size()) return false;
  ++line_;
  // A quoted field may hold a line break, so the row ends at the first '\n' outside quotes.
  // Rows almost never contain quotes: find the line end, and rescan only when one appears.
  const char* base = text_.data();
  const size_t size = text_.size();
  auto find = [&](char c, size_t from) -> size_t {
    const void* h = std::memchr(base + from, c, size - from);
    return h ? static_cast<size_t>(static_cast<const char*>(h) - base) : std::string_view::npos;
  };
  size_t end = find('\n', pos_);
  const size_t stop = end == std::string_view::npos ? size : end;
  if (std::memchr(base + pos_, '"', stop - pos_)) {
    bool in_q = false;
    for (end = pos_; end < size; ++end) {
      if (base[end] == '"') in_q = !in_q;  // a doubled quote toggles twice
      else if (base[end] == '\n' && !in_q) break;
    }
    if (end == size) end = std::string_view::npos;
  }
  if (end == std::string_view::npos) fail_row("truncated row: the file ends without a line end");
  std::string_view row = text_.substr(pos_, end - pos_);
  pos_ = end + 1;
  if (!row.empty() && row.back() == '\r') row.remove_suffix(1);
  const int n = split(row);
  if (n != ncols_)
    fail_row("expected " + std::to_string(ncols_) + " fields, found " +
             (n > kMaxCols ? "more than " + std::to_string(kMaxCols) : std::to_string(n)));
  return true;
}

int64_t CsvReader::i64(int col) const {
  int64_t v = 0;
  if (!parse_i64(raw(col), v)) fail(col, "an integer");
  return v;
}

int32_t CsvReader::i32(int col) const {
  const int64_t v = i64(col);
  if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max())
    fail(col, "a 32-bit integer");
  return static_cast<int32_t>(v);
}

double CsvReader::time(int col) const {
  std::string_view s = raw(col);
  if (s.empty()) return std::numeric_limits<double>::quiet_NaN();
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || !std::isfinite(v))
    fail(col, "seconds as a decimal number, or empty");
  return v;
}

std::string CsvReader::str(int col) const {
  std::string_view s = raw(col);
  if (!quoted_[col]) return std::string(s);
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    out += s[i];
    if (s[i] == '"') ++i;  // a doubled quote stands for one
  }
  return out;
}

}  // namespace twinfer::viz
