// JSON parsing with user-facing errors (see json.h).
#include "core/json.h"

#include "core/error.h"
#include "core/file_util.h"

namespace upcycle {

Json parse_json(std::string_view text, std::string_view what, const std::string& file) {
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    // parse_error for malformed text, and out_of_range (406) for numbers beyond double, e.g. 1e8192.
    std::string detail = e.what();
    // nlohmann prefixes "[json.exception.parse_error.101] "; the byte position is the useful part.
    if (auto pos = detail.find("] "); pos != std::string::npos) detail = detail.substr(pos + 2);
    throw Error(std::string(what) + " is not valid JSON: " + detail, file);
  }
}

Json read_json_file(const std::filesystem::path& path, std::string_view what) {
  return parse_json(read_text_file(path, what), what, path.string());
}

}  // namespace upcycle
