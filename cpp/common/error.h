// error.h — paratrain::Error: a C++ exception that carries a stable machine-readable code.
// The N-API layer turns it into a JS Error with `code` set, so callers can branch on it.
#pragma once
#include <stdexcept>
#include <string>

namespace paratrain {

class Error : public std::runtime_error {
 public:
  Error(std::string code, const std::string& message) : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

}  // namespace paratrain
