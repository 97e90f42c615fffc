// Internal invariant failures: reported as bugs, distinct from user errors.
#include "core/error.h"

namespace upcycle {

void internal_check_failed(const char* expr, const char* file, int line, const std::string& msg) {
  throw std::logic_error(std::string("internal error (a bug in upcycle): ") + msg + " [" + expr + " at " + file + ":" +
                         std::to_string(line) + "]");
}

}  // namespace upcycle
