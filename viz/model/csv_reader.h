// Strict reader for the run CSVs (docs/trace-format.md, "CSV conventions"). The whole file is
// read into memory once and rows are cut into string_views in place: a full-trace kv_events.csv
// has millions of rows, so nothing is allocated per row. Every error names FILE:LINE, the column
// and what was expected, and is thrown as twinfer::ConfigError.
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace twinfer::viz {

// Reads a whole file; throws ConfigError naming the path when it cannot be read.
std::string read_file_bytes(const std::string& path);

class CsvReader {
 public:
  static constexpr int kMaxCols = 16;

  // `text` must outlive the reader; `file` is the name used in messages.
  CsvReader(std::string_view text, std::string file);

  // The first line must be exactly these column names, in order.
  void expect_header(std::initializer_list<std::string_view> cols);
  // Advances to the next row; false at the end of the file. A row must have exactly the
  // header's number of fields and end with '\n' (a missing line end means a truncated file).
  bool next();

  size_t line() const { return line_; }  // 1-based line of the current row
  const std::string& file() const { return file_; }
  std::string_view raw(int col) const { return f_[static_cast<size_t>(col)]; }

  int64_t i64(int col) const;
  int32_t i32(int col) const;
  // Seconds; an empty field is NaN (an event that never happened).
  double time(int col) const;
  // Unquoted text (RFC 4180 doubled quotes undone).
  std::string str(int col) const;
  // Appends the `sep`-separated integers of a field to `out`; an empty field appends nothing.
  template <class Vec>
  void int_list(int col, char sep, Vec& out) const;

  [[noreturn]] void fail(int col, std::string_view expected) const;
  [[noreturn]] void fail_row(const std::string& why) const;

 private:
  std::string_view text_;
  std::string file_;
  size_t pos_ = 0;
  size_t line_ = 0;
  int ncols_ = 0;
  std::array<std::string_view, kMaxCols> f_{};
  std::array<std::string_view, kMaxCols> names_{};
  bool quoted_[kMaxCols] = {};

  int split(std::string_view row);
};

// Parses one integer list item; exposed for the template below.
bool parse_i64(std::string_view s, int64_t& v);

template <class Vec>
void CsvReader::int_list(int col, char sep, Vec& out) const {
  std::string_view s = raw(col);
  while (!s.empty()) {
    size_t k = s.find(sep);
    std::string_view item = s.substr(0, k);
    int64_t v = 0;
    if (!parse_i64(item, v)) fail(col, "a list of integers separated by '" + std::string(1, sep) + "'");
    out.push_back(static_cast<typename Vec::value_type>(v));
    if (k == std::string_view::npos) break;
    s.remove_prefix(k + 1);
  }
}

}  // namespace twinfer::viz
