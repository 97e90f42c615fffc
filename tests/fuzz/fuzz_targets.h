// The parsers of user files as fuzz targets: each `fuzz_<name>(data, size)` feeds arbitrary bytes to
// one parser and checks what it accepted. upcycle::Error is the expected rejection; anything else (an
// std::exception escaping, a failed invariant via fuzz_finding(), a sanitizer report) is a finding.
// Two drivers call the same bodies: libFuzzer (libfuzzer_main.cpp, `make fuzz`, clang) and the
// replay gtest (replay_test.cpp: the seed corpus plus seeded mutations, label fast, so CI runs it
// under ASan+UBSan with gcc). Path-taking parsers read the bytes from a scratch file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string_view>
#include <vector>

namespace upcycle::fuzz {

using FuzzFn = int (*)(const uint8_t* data, size_t size);

struct FuzzTarget {
  const char* name;  // corpus folder tests/fuzz/corpus/<name>/ and executable fuzz_<name>
  FuzzFn fn;
  // Real files (under the shared data dir or tests/) that seed the corpus besides corpus/<name>/.
  std::vector<std::filesystem::path> (*real_seeds)(const std::filesystem::path& shared_data,
                                                   const std::filesystem::path& source_dir);
};

// Every target, in a fixed order.
const std::vector<FuzzTarget>& all_targets();

// Prints what broke (and the input, escaped and cut to 2 KB) then aborts: libFuzzer saves the input.
[[noreturn]] void fuzz_finding(const char* what);
// The input being run, for fuzz_finding's message.
void set_current_input(const uint8_t* data, size_t size);

// A per-process scratch directory (removed by remove_scratch()); write_scratch replaces one file.
const std::filesystem::path& scratch_dir();
std::filesystem::path write_scratch(const std::string& name, std::string_view bytes);
void remove_scratch();

int fuzz_config(const uint8_t* data, size_t size);
int fuzz_safetensors_header(const uint8_t* data, size_t size);
int fuzz_safetensors_index(const uint8_t* data, size_t size);
int fuzz_tokenizer_json(const uint8_t* data, size_t size);
int fuzz_mergekit_yaml(const uint8_t* data, size_t size);
int fuzz_expert_prompts(const uint8_t* data, size_t size);
int fuzz_study_spec(const uint8_t* data, size_t size);
int fuzz_dataset_json(const uint8_t* data, size_t size);
int fuzz_token_shard(const uint8_t* data, size_t size);
int fuzz_metrics_jsonl(const uint8_t* data, size_t size);
int fuzz_trainer_state(const uint8_t* data, size_t size);
int fuzz_gguf(const uint8_t* data, size_t size);

}  // namespace upcycle::fuzz
