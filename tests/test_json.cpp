#include <catch2/catch.hpp>

#include "core/json.h"

using twinfer::Json;
using twinfer::JsonError;

TEST_CASE("json round-trips nested values", "[json]") {
  Json j = Json::parse(R"({"a": [1, 2.5, -3e2, true, null], "b": {"s": "x\"y\\n\u00e9"}})");
  REQUIRE(j.get("a")->as_array().size() == 5);
  CHECK(j.get("a")->as_array()[2].as_number() == -300.0);
  CHECK(j.get("b")->get("s")->as_string() == "x\"y\\n\xc3\xa9");
  Json back = Json::parse(j.dump(2));
  CHECK(back.dump() == j.dump());
}

TEST_CASE("json errors name line and column", "[json]") {
  try {
    Json::parse("{\n  \"a\": tru\n}", "cfg.json");
    FAIL("expected an error");
  } catch (const JsonError& e) {
    CHECK(std::string(e.what()).rfind("cfg.json:2:8:", 0) == 0);
  }
  CHECK_THROWS_AS(Json::parse("[1,]"), JsonError);
  CHECK_THROWS_AS(Json::parse("\"\\ud800\""), JsonError);
  CHECK_THROWS_AS(Json::parse("01"), JsonError);
  CHECK_THROWS_AS(Json::parse(std::string(600, '[')), JsonError);
}

TEST_CASE("json typed accessors name the field", "[json]") {
  Json j = Json::parse(R"({"n": 1.5})");
  CHECK_THROWS_WITH(j.get("n")->as_int("n"), Catch::Contains("n: expected an integer"));
  CHECK_THROWS_WITH(j.get("n")->as_string("n"), Catch::Contains("expected a string, got number"));
  CHECK(Json(int64_t{42}).dump() == "42");
  CHECK(Json(0.1).dump() == "0.1");
}
