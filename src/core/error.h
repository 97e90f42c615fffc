// User-facing errors and internal invariant checks.
// A user error (bad file, bad flag, unsupported model) throws upcycle::Error; the CLI prints it as
// `upcycle: error: <what> (<file>)` and exits 2. UPCYCLE_CHECK guards internal invariants only: a
// failing check is a bug in upcycle, not in the user's input, and says so.
#pragma once

#include <stdexcept>
#include <string>

namespace upcycle {

class Error : public std::runtime_error {
 public:
  explicit Error(std::string what, std::string file = {})
      : std::runtime_error(std::move(what)), file_(std::move(file)) {}
  const std::string& file() const { return file_; }
  // The one-line form the CLI prints after "upcycle: error: ".
  std::string message() const { return file_.empty() ? what() : std::string(what()) + " (" + file_ + ")"; }

 private:
  std::string file_;
};

[[noreturn]] void internal_check_failed(const char* expr, const char* file, int line, const std::string& msg);

}  // namespace upcycle

#define UPCYCLE_CHECK(cond, msg)                                                   \
  do {                                                                             \
    if (!(cond)) ::upcycle::internal_check_failed(#cond, __FILE__, __LINE__, (msg)); \
  } while (0)
