// Progress for long work, on stderr. On a terminal one line is redrawn in place (at most 10×/s);
// otherwise (logs, CI) a plain line is printed at most every 10 s, so logs stay readable.
// Quiet when the whole job is too small to need it (under ~1 s). Long jobs with their own units (training
// steps) can start part-way (a resumed job: rate and ETA count this process's work only), append a
// detail to every line (loss, lr…), print off a terminal every N units instead of every 10 s, and
// print notes (one-off lines) without garbling the redrawn line.
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
  void start_at(uint64_t done);            // before the first advance
  void set_detail(std::string detail);     // appended to every following line
  void set_log_every(uint64_t units);      // off a terminal: a line every `units` (and no quiet start)
  void note(const std::string& line);      // a line of its own on stderr, above the progress line
  void finish();  // prints the final line (if anything was printed) and a newline on terminals
  ~Progress();

 private:
  void print(bool final);
  std::string label_, unit_;
  std::string detail_;
  uint64_t total_, done_ = 0, initial_ = 0, log_every_ = 0, last_logged_ = 0;
  std::chrono::steady_clock::time_point start_, last_print_;
  bool tty_, printed_ = false, finished_ = false;
};

}  // namespace upcycle
