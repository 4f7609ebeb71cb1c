// Errors that cross an I/O boundary (files, CLI, Lua). Inside the engine failures are values;
// these exceptions are caught once at the boundary and printed as one clear message.
#pragma once
#include <stdexcept>
#include <string>

namespace twinfer {

// A configuration or input the user can fix: bad flag value, unknown preset, malformed file.
// `exit_code` lets the CLI exit 2 for invalid flag values, as the issue asks.
class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(const std::string& msg, int exit_code = 1)
      : std::runtime_error(msg), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

}  // namespace twinfer
