// Progress lines on stderr (see progress.h).
#include "core/progress.h"

#include <unistd.h>

#include <cstdio>

#include "core/units.h"

namespace upcycle {

Progress::Progress(std::string label, uint64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), start_(std::chrono::steady_clock::now()),
      last_print_(start_), tty_(::isatty(2) == 1) {}

Progress::~Progress() {
  if (!finished_ && printed_ && tty_) std::fputc('\n', stderr);
}

void Progress::start_at(uint64_t done) { done_ = initial_ = last_logged_ = done; }
void Progress::set_detail(std::string detail) { detail_ = std::move(detail); }
void Progress::set_log_every(uint64_t units) { log_every_ = units; }

void Progress::note(const std::string& line) {
  std::fprintf(stderr, tty_ && printed_ && !finished_ ? "\r\033[K%s\n" : "%s\n", line.c_str());
  if (tty_) last_print_ = std::chrono::steady_clock::time_point{};  // redraw at the next advance
}

void Progress::advance(uint64_t amount) {
  done_ += amount;
  auto now = std::chrono::steady_clock::now();
  if (!tty_ && log_every_ > 0) {
    if (done_ - last_logged_ >= log_every_ || done_ == total_) {
      print(false);
      last_logged_ = done_;
    }
    return;
  }
  double since_start = std::chrono::duration<double>(now - start_).count();
  double since_print = std::chrono::duration<double>(now - last_print_).count();
  if (since_start < 1.0) return;
  if (tty_ ? since_print >= 0.1 : (since_print >= 10.0 || !printed_)) {
    print(false);
    last_print_ = now;
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (printed_) print(true);
}

void Progress::print(bool final) {
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double fraction = total_ ? static_cast<double>(done_) / static_cast<double>(total_) : 1.0;
  bool bytes = unit_ == "bytes";
  std::string amount = bytes ? format_bytes(done_) + " / " + format_bytes(total_)
                             : format_count(done_) + " / " + format_count(total_) + " " + unit_;
  double rate = seconds > 0 ? static_cast<double>(done_ - initial_) / seconds : 0;
  char slow[32];  // slow units (training steps): two decimals rather than "0 steps/s"
  std::snprintf(slow, sizeof slow, "%.2f", rate);
  std::string speed = bytes      ? format_bytes(static_cast<uint64_t>(rate)) + "/s"
                      : rate < 10 ? std::string(slow) + " " + unit_ + "/s"
                                  : format_count(static_cast<uint64_t>(rate)) + " " + unit_ + "/s";
  double eta = (rate > 0 && !final && total_ > done_) ? static_cast<double>(total_ - done_) / rate : 0;
  char line[512];
  std::snprintf(line, sizeof line, "%s: %5.1f%%  %s  %s  %s %.0fs%s%s", label_.c_str(), 100 * fraction, amount.c_str(),
                speed.c_str(), final ? "took" : "eta", final ? seconds : eta, detail_.empty() ? "" : "  ",
                detail_.c_str());
  std::fprintf(stderr, tty_ ? "\r%s\033[K%s" : "%s%s\n", line, (tty_ && final) ? "\n" : "");
  printed_ = true;
}

}  // namespace upcycle
