// The real Hugging Face tokenizers as a test oracle: `UPCYCLE_PYTHON tests/reference/encode.py FILE <
// texts.json` (the `tokenizers` package, HF's Rust library, from the pinned reference environment
// that scripts/setup builds), or with `--transformers DIR` transformers' AutoTokenizer on a directory.
// The process starts in the constructor so it runs while the C++ side works; result() waits for it.
// The real Llama-3 and Qwen3 tokenizer files are read in place from ../shared/data/tokenizers
// (kTokenizersDir). Header-only; needs the UPCYCLE_REFERENCE_DIR, UPCYCLE_PYTHON and
// UPCYCLE_TOKENIZERS_DIR definitions of tests/CMakeLists.txt.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#if !defined(UPCYCLE_REFERENCE_DIR) || !defined(UPCYCLE_PYTHON) || !defined(UPCYCLE_TOKENIZERS_DIR)
#error "UPCYCLE_REFERENCE_DIR, UPCYCLE_PYTHON and UPCYCLE_TOKENIZERS_DIR must be defined (tests/CMakeLists.txt)"
#endif

namespace upcycle::test {

inline const std::filesystem::path kReferenceDir = UPCYCLE_REFERENCE_DIR;
inline const std::filesystem::path kReferencePython = UPCYCLE_PYTHON;
inline const std::filesystem::path kTokenizersDir = UPCYCLE_TOKENIZERS_DIR;
// The real tokenizer directories (tokenizer.json + tokenizer_config.json; PROVENANCE.md beside them).
inline const std::filesystem::path kLlama3Tokenizer = kTokenizersDir / "llama3";
inline const std::filesystem::path kQwen3Tokenizer = kTokenizersDir / "qwen3";

// What encodes the texts: HF tokenizers on a tokenizer.json, or transformers' AutoTokenizer on a
// directory (tokenizer.json + tokenizer_config.json, as a user of transformers loads it).
enum class HfLibrary { kTokenizers, kTransformers };

// `python encode.py [--transformers] PATH < TEXTS_JSON`; result() is encode.py's JSON object
// ({"ids", "ids_special", "decoded", "decoded_skip"}, one entry per text).
class HfReference {
 public:
  HfReference(const std::filesystem::path& tokenizer, const std::filesystem::path& texts_json,
              HfLibrary library = HfLibrary::kTokenizers) {
    const std::string cmd = "'" + kReferencePython.string() + "' '" + (kReferenceDir / "encode.py").string() + "' " +
                            (library == HfLibrary::kTransformers ? "--transformers " : "") + "'" + tokenizer.string() +
                            "' < '" + texts_json.string() + "'";
    pipe_ = popen(cmd.c_str(), "r");
  }
  ~HfReference() {
    if (pipe_) pclose(pipe_);
  }
  HfReference(const HfReference&) = delete;
  HfReference& operator=(const HfReference&) = delete;
  // Empty on failure (encode.py's own one-line message is on stderr).
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

// The reference environment and the real tokenizer files present? Otherwise `why` says what is
// missing (tests then FAIL, naming scripts/setup: nothing is skipped).
inline bool hf_reference_installed(std::string& why) {
  if (!std::filesystem::exists(kReferencePython)) {
    why = kReferencePython.string() + " is missing: run scripts/setup (it builds the reference Python environment)";
    return false;
  }
  for (const auto& p : {kLlama3Tokenizer / "tokenizer.json", kQwen3Tokenizer / "tokenizer.json"})
    if (!std::filesystem::exists(p)) {
      why = p.string() + " is missing (the shared test data beside the checkout)";
      return false;
    }
  return true;
}

}  // namespace upcycle::test
