// Shared pieces of the fuzz targets: the registry with each target's real seed files, the scratch
// directory path-taking parsers read from, and fuzz_finding().
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "fuzz_targets.h"

namespace upcycle::fuzz {
namespace fs = std::filesystem;

namespace {

const uint8_t* g_input = nullptr;
size_t g_input_size = 0;

std::vector<fs::path> none(const fs::path&, const fs::path&) { return {}; }

std::vector<fs::path> shared_tokenizers(const fs::path& shared, const fs::path&) {
  return {shared / "tokenizers/llama3/tokenizer.json", shared / "tokenizers/qwen3/tokenizer.json"};
}

std::vector<fs::path> mergekit_examples(const fs::path&, const fs::path& source) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(source / "tests/data/mergekit")) out.push_back(e.path());
  return out;
}

std::vector<fs::path> study_specs(const fs::path&, const fs::path& source) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(source / "experiments"))
    if (e.path().extension() == ".yaml") out.push_back(e.path());
  return out;
}

}  // namespace

const std::vector<FuzzTarget>& all_targets() {
  static const std::vector<FuzzTarget> targets = {
      {"config", fuzz_config, none},
      {"safetensors_header", fuzz_safetensors_header, none},
      {"safetensors_index", fuzz_safetensors_index, none},
      {"tokenizer_json", fuzz_tokenizer_json, shared_tokenizers},
      {"mergekit_yaml", fuzz_mergekit_yaml, mergekit_examples},
      {"expert_prompts", fuzz_expert_prompts, mergekit_examples},
      {"study_spec", fuzz_study_spec, study_specs},
      {"dataset_json", fuzz_dataset_json, none},
      {"token_shard", fuzz_token_shard, none},
      {"metrics_jsonl", fuzz_metrics_jsonl, none},
      {"trainer_state", fuzz_trainer_state, none},
      {"gguf", fuzz_gguf, none},
  };
  return targets;
}

void set_current_input(const uint8_t* data, size_t size) {
  g_input = data;
  g_input_size = size;
}

void fuzz_finding(const char* what) {
  std::fprintf(stderr, "fuzz finding: %s\n", what);
  if (g_input != nullptr) {
    std::string escaped;
    for (size_t i = 0; i < g_input_size && escaped.size() < 2048; ++i) {
      const unsigned char c = g_input[i];
      if (c >= 0x20 && c < 0x7f && c != '\\') {
        escaped += static_cast<char>(c);
      } else {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\x%02x", c);
        escaped += buf;
      }
    }
    std::fprintf(stderr, "input (%zu bytes): %s\n", g_input_size, escaped.c_str());
  }
  std::abort();
}

const fs::path& scratch_dir() {
  static const fs::path dir = [] {
    const fs::path d = fs::temp_directory_path() / ("upcycle-fuzz-" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d;
  }();
  return dir;
}

fs::path write_scratch(const std::string& name, std::string_view bytes) {
  const fs::path path = scratch_dir() / name;
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) fuzz_finding(("cannot write scratch file " + path.string()).c_str());
  return path;
}

void remove_scratch() {
  std::error_code ec;
  fs::remove_all(scratch_dir(), ec);
}

}  // namespace upcycle::fuzz
