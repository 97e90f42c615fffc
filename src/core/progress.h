// Progress for long work, on stderr. On a terminal one line is redrawn in place (at most 10×/s);
// otherwise (logs, CI) a plain line is printed at most every 10 s, so logs stay readable.
// Quiet when the whole job is too small to need it (under ~1 s).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace upcycle {

class Progress {
 public:
  // `total` is in `unit`s ("bytes" prints as GB; anything else as a count).
  Progress(std::string label, uint64_t total, std::string unit);
  void advance(uint64_t amount);
  void finish();  // prints the final line (if anything was printed) and a newline on terminals
  ~Progress();

 private:
  void print(bool final);
  std::string label_, unit_;
  uint64_t total_, done_ = 0;
  std::chrono::steady_clock::time_point start_, last_print_;
  bool tty_, printed_ = false, finished_ = false;
};

}  // namespace upcycle
