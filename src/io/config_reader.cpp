// Typed config.json access (see config_reader.h).
#include "io/config_reader.h"

#include <cmath>

#include "core/error.h"

namespace upcycle {

std::string quoted(std::string_view key) { return "'" + std::string(key) + "'"; }

std::string short_json(const Json& value) {
  // replace: a value built in code may hold invalid UTF-8; a message must never throw.
  std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return text;
}

const Json* ConfigReader::find(std::string_view key) const {
  auto it = object_.find(key);
  if (it == object_.end() || it->is_null()) return nullptr;
  return &*it;
}

void ConfigReader::fail(const std::string& what) const { throw Error(what, file_); }

int64_t ConfigReader::as_int(const Json& value, const std::string& label, int64_t min) const {
  int64_t result = 0;
  if (value.is_number_unsigned()) {
    uint64_t u = value.get<uint64_t>();
    if (u > static_cast<uint64_t>(kMaxConfigInt))
      fail(label + " (" + short_json(value) + ") is too large (at most " + std::to_string(kMaxConfigInt) + ")");
    result = static_cast<int64_t>(u);
  } else if (value.is_number_integer()) {
    result = value.get<int64_t>();
  } else {
    fail(label + " must be an integer, got " + short_json(value));
  }
  if (result > kMaxConfigInt)
    fail(label + " (" + std::to_string(result) + ") is too large (at most " + std::to_string(kMaxConfigInt) + ")");
  if (result < min) fail(label + " must be at least " + std::to_string(min) + ", got " + std::to_string(result));
  return result;
}

double ConfigReader::as_number(const Json& value, const std::string& label, double min) const {
  if (!value.is_number()) fail(label + " must be a number, got " + short_json(value));
  double result = value.get<double>();
  if (!std::isfinite(result)) fail(label + " must be finite, got " + short_json(value));
  if (result < min) fail(label + " must be at least " + short_json(Json(min)) + ", got " + short_json(value));
  return result;
}

int64_t ConfigReader::required_int(std::string_view key, int64_t min) const {
  const Json* value = find(key);
  if (!value) fail("missing required key " + quoted(key));
  return as_int(*value, quoted(key), min);
}

int64_t ConfigReader::int_or(std::string_view key, int64_t fallback, int64_t min) const {
  const Json* value = find(key);
  return value ? as_int(*value, quoted(key), min) : fallback;
}

bool ConfigReader::bool_or(std::string_view key, bool fallback) const {
  const Json* value = find(key);
  if (!value) return fallback;
  if (!value->is_boolean()) fail(quoted(key) + " must be true or false, got " + short_json(*value));
  return value->get<bool>();
}

double ConfigReader::number_or(std::string_view key, double fallback, double min) const {
  const Json* value = find(key);
  return value ? as_number(*value, quoted(key), min) : fallback;
}

std::string ConfigReader::string_or(std::string_view key, std::string_view fallback) const {
  const Json* value = find(key);
  if (!value) return std::string(fallback);
  if (!value->is_string()) fail(quoted(key) + " must be a string, got " + short_json(*value));
  return value->get<std::string>();
}

const Json* ConfigReader::object_or_null(std::string_view key) const {
  const Json* value = find(key);
  if (value && !value->is_object()) fail(quoted(key) + " must be an object or null, got " + short_json(*value));
  return value;
}

RopeDict find_rope_dict(const ConfigReader& reader) {
  const Json* scaling = reader.object_or_null("rope_scaling");
  if (scaling && !scaling->empty()) return {scaling, "rope_scaling"};
  if (const Json* parameters = reader.object_or_null("rope_parameters")) return {parameters, "rope_parameters"};
  return {};
}

}  // namespace upcycle
