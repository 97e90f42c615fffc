// The example mergekit-moe YAMLs of tests/data/mergekit, made runnable: copied into a scratch directory
// next to tiny random checkpoints for every `models/<name>` they reference (family from the name's
// prefix: llama-, qwen2-, qwen3-; weights seeded by the name, so two names are two different models).
// Header-only; shared by the YAML/plan tests and, later, convert's end-to-end tests.
#pragma once

#include <cstdint>
#include <filesystem>
#include <regex>
#include <set>
#include <string>

#include "core/rng.h"
#include "io/model_config.h"
#include "io/random_init.h"
#include "support/model_test_support.h"
#include "support/test_support.h"
#include "support/tokenizer_test_support.h"

namespace upcycle::test {

inline std::filesystem::path mergekit_data_dir() {
  // From the build's definition, not __FILE__: a compiler cache may make __FILE__ relative.
  return std::filesystem::path(UPCYCLE_TEST_DATA_DIR) / "mergekit";
}

// Planning reads config.json only; converting needs the weights too.
// Prompt gate modes also need a tokenizer: kWithTokenizer adds the one-token-per-byte tokenizer.json
// (tokenizer_test_support.h) and widens the vocabulary to 256.
enum class ExampleWeights { kConfigOnly, kWithWeights, kWithTokenizer };

// A tiny dense checkpoint (tiny_model_config of `family`, F32) with config.json in `dir`.
inline void write_tiny_checkpoint(const std::filesystem::path& dir, Family family, uint64_t seed,
                                  ExampleWeights weights = ExampleWeights::kWithWeights) {
  std::filesystem::create_directories(dir);
  ModelConfig config = tiny_model_config(family);
  if (weights == ExampleWeights::kWithTokenizer) {
    config.vocab_size = kByteTokenizerVocab;
    write_byte_tokenizer(dir);
  }
  write_model_config(dir, config);
  if (weights == ExampleWeights::kConfigOnly) return;
  RandomInitOptions options;
  options.seed = seed;
  options.show_progress = false;
  write_random_weights(config, options, dir);
}

// Copies `yaml_name` into `root` and writes every model it names under root/models/. Returns the copy.
inline std::filesystem::path materialise_mergekit_example(const std::string& yaml_name,
                                                          const std::filesystem::path& root,
                                                          ExampleWeights weights = ExampleWeights::kWithWeights) {
  const std::string text = read_bytes(mergekit_data_dir() / yaml_name);
  const std::filesystem::path yaml = root / yaml_name;
  write_bytes(yaml, text);
  static const std::regex model_ref(R"(models/([A-Za-z0-9_-]+))");
  std::set<std::string> names;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), model_ref); it != std::sregex_iterator(); ++it)
    names.insert((*it)[1].str());
  for (const std::string& name : names) {
    const Family family = name.starts_with("qwen3-")   ? Family::kQwen3
                          : name.starts_with("qwen2-") ? Family::kQwen2
                                                       : Family::kLlama;
    const std::filesystem::path dir = root / "models" / name;
    if (!std::filesystem::exists(dir)) write_tiny_checkpoint(dir, family, hash_name(name), weights);
  }
  return yaml;
}

}  // namespace upcycle::test
