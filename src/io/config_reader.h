// Typed access to config.json values with one-line user errors that name the key and the file.
// Absent keys and explicit nulls both fall back to the default (HF's classes treat an explicit
// null like "use the default" for every key upcycle reads, except where the caller says otherwise).
// Integers must be JSON integers within [min, 2^31-1]: the cap keeps every product of two sizes
// (q_proj rows = heads * head_dim, ...) inside int64 without overflow checks downstream.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "core/json.h"

namespace upcycle {

inline constexpr int64_t kMaxConfigInt = 2147483647;

class ConfigReader {
 public:
  ConfigReader(const Json& object, std::string file) : object_(object), file_(std::move(file)) {}

  // nullptr when the key is absent or null.
  const Json* find(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) != nullptr; }

  int64_t required_int(std::string_view key, int64_t min) const;
  int64_t int_or(std::string_view key, int64_t fallback, int64_t min) const;
  bool bool_or(std::string_view key, bool fallback) const;
  // Finite number (JSON integer or float) >= min.
  double number_or(std::string_view key, double fallback, double min) const;
  std::string string_or(std::string_view key, std::string_view fallback) const;
  const Json* object_or_null(std::string_view key) const;  // error if present but not an object

  // Value-level checks; `label` is how the value is named in messages, e.g. "'factor' in 'rope_scaling'".
  int64_t as_int(const Json& value, const std::string& label, int64_t min) const;
  double as_number(const Json& value, const std::string& label, double min) const;

  [[noreturn]] void fail(const std::string& what) const;
  const std::string& file() const { return file_; }

 private:
  const Json& object_;
  std::string file_;
};

// Where a config keeps its RoPE parameters, as transformers v5 reads them: a non-empty v4
// `rope_scaling` wins, else v5 `rope_parameters`; dict == nullptr when neither is there.
struct RopeDict {
  const Json* dict = nullptr;
  std::string_view key;  // "rope_scaling" or "rope_parameters"
};
RopeDict find_rope_dict(const ConfigReader& reader);

std::string quoted(std::string_view key);   // 'key'
std::string short_json(const Json& value);  // compact dump, cut to 40 characters

}  // namespace upcycle
