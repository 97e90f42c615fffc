// The JSON type used everywhere: nlohmann::ordered_json keeps key order, so a config.json that
// upcycle rewrites keeps the user's key order and every key it does not know.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string_view>

namespace upcycle {

using Json = nlohmann::ordered_json;

// Parses text; on failure throws Error("<what> is not valid JSON: <detail>", file).
Json parse_json(std::string_view text, std::string_view what, const std::string& file);
// Reads and parses a whole file; missing or unreadable files throw Error naming the file.
Json read_json_file(const std::filesystem::path& path, std::string_view what);

}  // namespace upcycle
