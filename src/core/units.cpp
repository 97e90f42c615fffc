// Human-readable sizes and counts (see units.h).
#include "core/units.h"

#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace upcycle {

uint64_t parse_byte_size(std::string_view text, std::string_view what) {
  auto fail = [&](std::string_view why) -> uint64_t {
    throw Error("invalid size '" + std::string(text) + "' for " + std::string(what) + ": " + std::string(why) +
                " (examples: 5GB, 500MB, 2GiB, 1048576)");
  };
  size_t digits_end = 0;
  while (digits_end < text.size() && (std::isdigit(static_cast<unsigned char>(text[digits_end])) || text[digits_end] == '.'))
    ++digits_end;
  if (digits_end == 0) return fail("it does not start with a number");
  double number = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + digits_end, number);
  if (ec != std::errc() || ptr != text.data() + digits_end) return fail("the number is malformed");
  std::string unit(text.substr(digits_end));
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  struct Unit {
    const char* name;
    double factor;
  };
  static constexpr std::array<Unit, 10> kUnits{{{"", 1},
                                                {"B", 1},
                                                {"KB", 1e3},
                                                {"MB", 1e6},
                                                {"GB", 1e9},
                                                {"TB", 1e12},
                                                {"KIB", 1024.0},
                                                {"MIB", 1024.0 * 1024},
                                                {"GIB", 1024.0 * 1024 * 1024},
                                                {"TIB", 1024.0 * 1024 * 1024 * 1024}}};
  for (const auto& u : kUnits) {
    if (unit == u.name) {
      double bytes = std::floor(number * u.factor);
      if (bytes < 1) return fail("it must be at least 1 byte");
      if (bytes > 1.8e19) return fail("it is too large");
      return static_cast<uint64_t>(bytes);
    }
  }
  return fail("unknown unit '" + std::string(text.substr(digits_end)) + "'");
}

std::string format_bytes(uint64_t bytes) {
  static constexpr std::array<const char*, 5> kNames{"B", "KB", "MB", "GB", "TB"};
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1000 && unit + 1 < kNames.size()) {
    value /= 1000;
    ++unit;
  }
  char buf[32];
  if (unit == 0)
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  else
    std::snprintf(buf, sizeof buf, "%.2f %s", value, kNames[unit]);
  return buf;
}

std::string format_count(uint64_t count) {
  char buf[32];
  double v = static_cast<double>(count);
  if (count >= 1000000000ull)
    std::snprintf(buf, sizeof buf, "%.2fB", v / 1e9);
  else if (count >= 1000000ull)
    std::snprintf(buf, sizeof buf, "%.1fM", v / 1e6);
  else if (count >= 1000ull)
    std::snprintf(buf, sizeof buf, "%.1fK", v / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(count));
  return buf;
}

}  // namespace upcycle
