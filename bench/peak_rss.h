// Peak resident memory for benchmarks: the process high-water mark (VmHWM), which Linux resets when
// "5" is written to /proc/self/clear_refs, so each benchmark case can report its own peak.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>

namespace upcycle::bench {

inline void reset_peak_rss() { std::ofstream("/proc/self/clear_refs") << "5"; }

inline uint64_t peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    if (key == "VmHWM:") {
      uint64_t kb = 0;
      status >> kb;
      return kb * 1024;
    }
  }
  return 0;
}

}  // namespace upcycle::bench
