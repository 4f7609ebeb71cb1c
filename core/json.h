// Minimal JSON value, parser and writer. Used for config.json round trips, HF model configs,
// summary.json and trace files; a small, strict parser (RFC 8259) so errors name line and column.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace twinfer {

class JsonError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Json {
 public:
  using Array = std::vector<Json>;
  // std::map keeps keys sorted so written files are stable across runs.
  using Object = std::map<std::string, Json, std::less<>>;

  Json() : v_(nullptr) {}
  Json(std::nullptr_t) : v_(nullptr) {}
  Json(bool b) : v_(b) {}
  Json(int v) : v_(static_cast<double>(v)) {}
  Json(int64_t v) : v_(static_cast<double>(v)) {}
  Json(uint64_t v) : v_(static_cast<double>(v)) {}
  Json(double v) : v_(v) {}
  Json(const char* s) : v_(std::string(s)) {}
  Json(std::string s) : v_(std::move(s)) {}
  Json(std::string_view s) : v_(std::string(s)) {}
  Json(Array a) : v_(std::move(a)) {}
  Json(Object o) : v_(std::move(o)) {}

  static Json object() { return Json(Object{}); }
  static Json array() { return Json(Array{}); }

  bool is_null() const { return std::holds_alternative<std::nullptr_t>(v_); }
  bool is_bool() const { return std::holds_alternative<bool>(v_); }
  bool is_number() const { return std::holds_alternative<double>(v_); }
  bool is_string() const { return std::holds_alternative<std::string>(v_); }
  bool is_array() const { return std::holds_alternative<Array>(v_); }
  bool is_object() const { return std::holds_alternative<Object>(v_); }

  // Accessors throw JsonError naming the expected type; `what` names the field for messages.
  bool as_bool(std::string_view what = "value") const;
  double as_number(std::string_view what = "value") const;
  int64_t as_int(std::string_view what = "value") const;  // rejects non-integral numbers
  const std::string& as_string(std::string_view what = "value") const;
  const Array& as_array(std::string_view what = "value") const;
  const Object& as_object(std::string_view what = "value") const;
  Array& as_array_mut();
  Object& as_object_mut();

  // Object helpers. `get` returns nullptr when the key is absent.
  const Json* get(std::string_view key) const;
  bool contains(std::string_view key) const { return get(key) != nullptr; }
  Json& operator[](std::string_view key);  // makes this an object if null
  void push_back(Json v);                  // makes this an array if null

  std::string dump(int indent = -1) const;

  static Json parse(std::string_view text, std::string_view source = "<string>");
  static Json parse_file(const std::string& path);

 private:
  std::variant<std::nullptr_t, bool, double, std::string, Array, Object> v_;
  void dump_to(std::string& out, int indent, int depth) const;
};

// Appends s as a JSON string literal (quoted, escaped) to out.
void json_escape_to(std::string& out, std::string_view s);
// Shortest round-trip text of a double, integers without a fraction ("3", "0.25", "1e+20").
void json_number_to(std::string& out, double v);

}  // namespace twinfer
