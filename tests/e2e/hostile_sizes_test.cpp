// Hostile sizes (issue 20 part 4): files claiming absurd sizes — vocab 10^12, 10^6 layers, hidden 2^40,
// products that overflow, a tensor of 2^63 bytes, an index naming thousands of shards, token shards
// and dataset.json with 2^62 tokens, a tokenizer id of 2^31 - 1 — must fail fast with one line naming
// the file and the key, exit 2, without a giant allocation (plus wrongly typed values the fuzzers found
// ending in an internal error): the child runs under RLIMIT_AS = 2 GiB
// and RLIMIT_CPU = 20 s, so an attempt would end in "out of memory" or a kill, which the test rejects.
// Under AddressSanitizer (which reserves terabytes of shadow) the address-space limit is off; an
// attempt then aborts in ASan's allocator instead, which fails the test just as well.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/json.h"
#include "support/test_support.h"

namespace upcycle {
namespace {
namespace fs = std::filesystem;

#if defined(__SANITIZE_ADDRESS__)
constexpr uint64_t kAddressSpace = 0;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr uint64_t kAddressSpace = 0;
#else
constexpr uint64_t kAddressSpace = uint64_t(2) << 30;
#endif
#else
constexpr uint64_t kAddressSpace = uint64_t(2) << 30;
#endif

struct HostileCase {
  std::string name;
  std::function<std::vector<std::string>(const fs::path& root)> prepare;  // root/good: a tiny llama
  std::vector<std::string> expected;  // substrings of the error line: the key or problem, and the file
};
void PrintTo(const HostileCase& c, std::ostream* os) { *os << c.name; }

// A copy of the good model with config.json edited (and the weights kept: the config must fail first).
std::vector<std::string> config_with(const fs::path& root, const std::function<void(Json&)>& edit) {
  const fs::path dir = root / "hostile";
  fs::copy(root / "good", dir, fs::copy_options::recursive);
  Json c = read_json_file(dir / "config.json", "config");
  edit(c);
  test::write_bytes(dir / "config.json", c.dump(2));
  return {"inspect", dir.string()};
}

std::vector<std::string> weights_with(const fs::path& root, const std::string& header) {
  const fs::path dir = root / "hostile";
  fs::create_directory(dir);
  fs::copy_file(root / "good" / "config.json", dir / "config.json");
  test::write_safetensors_raw(dir / "model.safetensors", header, std::string(16, '\0'));
  return {"inspect", dir.string()};
}

std::string shard_header(uint32_t width, uint64_t count, uint64_t vocab) {
  std::string h = "UPCYTOK";
  h.push_back('\0');
  auto put = [&h](uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) h.push_back(char((v >> (8 * i)) & 0xff));
  };
  put(1, 4), put(width, 4), put(count, 8), put(vocab, 8);
  return h;
}

std::vector<std::string> dataset_with(const fs::path& root, uint64_t shard_count, uint64_t listed) {
  const fs::path dir = root / "tokens";
  fs::create_directory(dir);
  test::write_bytes(dir / "train-00000.bin", shard_header(2, shard_count, 100) + std::string(8, '\0'));
  test::write_bytes(dir / "dataset.json", R"({"format": "upcycle-tokens", "version": 1, "vocab_size": 100, "splits": {"train": [{"file": "train-00000.bin", "tokens": )" +
                                              std::to_string(listed) + "}]}}");
  return {"data", "inspect", dir.string()};
}

std::vector<std::string> tokenizer_with(const fs::path& root, const std::string& vocab) {
  const fs::path dir = root / "tok";
  fs::create_directory(dir);
  test::write_bytes(dir / "tokenizer.json",
                    R"({"version": "1.0", "model": {"type": "BPE", "vocab": )" + vocab +
                        R"(, "merges": []}, "added_tokens": [], "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}, "decoder": {"type": "ByteLevel"}})");
  test::write_bytes(root / "text.txt", "hello\n");
  return {"data", "tokenize", "--tokenizer", (dir / "tokenizer.json").string(), "--input", (root / "text.txt").string(),
          "--out", (root / "out").string()};
}

std::vector<HostileCase> catalogue() {
  const int64_t big = 2147483647;  // the largest value the config reader takes for one key
  return {
      {"vocab_1e12", [](const fs::path& r) { return config_with(r, [](Json& c) { c["vocab_size"] = int64_t(1000000000000); }); },
       {"'vocab_size'", "config.json"}},
      {"layers_1e6", [](const fs::path& r) { return config_with(r, [](Json& c) { c["num_hidden_layers"] = 1000000; }); },
       {"'num_hidden_layers'", "limit", "config.json"}},
      {"layers_2e9", [big](const fs::path& r) { return config_with(r, [big](Json& c) { c["num_hidden_layers"] = big; }); },
       {"'num_hidden_layers'", "config.json"}},
      {"hidden_2p40", [](const fs::path& r) { return config_with(r, [](Json& c) { c["hidden_size"] = int64_t(1) << 40; }); },
       {"'hidden_size'", "config.json"}},
      {"vocab_times_hidden", [big](const fs::path& r) {
         return config_with(r, [big](Json& c) { c["vocab_size"] = big, c["hidden_size"] = big, c["head_dim"] = 16; });
       }, {"'vocab_size' × 'hidden_size'", "config.json"}},
      {"ffn_times_hidden", [big](const fs::path& r) {
         return config_with(r, [big](Json& c) { c["intermediate_size"] = big, c["hidden_size"] = 1 << 20, c["head_dim"] = 16; });
       }, {"FFN width × 'hidden_size'", "config.json"}},
      {"total_parameters", [](const fs::path& r) {
         return config_with(r, [](Json& c) {
           c["num_hidden_layers"] = 4096, c["hidden_size"] = 1 << 19, c["intermediate_size"] = 1 << 20, c["head_dim"] = 16;
         });
       }, {"parameters", "limit", "config.json"}},
      {"experts_1e6", [](const fs::path& r) {
         return config_with(r, [](Json& c) {
           c["model_type"] = "mixtral", c["architectures"] = Json::array({"MixtralForCausalLM"});
           c["num_local_experts"] = 1000000, c["num_experts_per_tok"] = 2;
         });
       }, {"expert count", "config.json"}},
      {"init_layers_1e6", [](const fs::path& r) {
         return std::vector<std::string>{"init", "--arch", "llama", "--layers", "1000000", (r / "x").string()};
       }, {"'num_hidden_layers'", "limit"}},
      {"tensor_2p63_bytes", [](const fs::path& r) {
         return weights_with(r, R"({"a":{"dtype":"F32","shape":[2305843009213693952],"data_offsets":[0,16]}})");
       }, {"'a'", "model.safetensors"}},
      {"tensor_shape_overflow", [](const fs::path& r) {
         return weights_with(r, R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,16]}})");
       }, {"overflows", "model.safetensors"}},
      {"index_5000_shards", [](const fs::path& r) {
         const fs::path dir = r / "hostile";
         fs::create_directory(dir);
         fs::copy_file(r / "good" / "config.json", dir / "config.json");
         Json map = Json::object();
         for (int i = 0; i < 5000; ++i) map["t" + std::to_string(i)] = "model-" + std::to_string(i) + "-of-05000.safetensors";
         test::write_bytes(dir / "model.safetensors.index.json", Json{{"metadata", {{"total_size", 1}}}, {"weight_map", map}}.dump());
         return std::vector<std::string>{"inspect", dir.string()};
       }, {"does not exist", "safetensors"}},
      {"shard_count_2p62", [](const fs::path& r) { return dataset_with(r, uint64_t(1) << 62, uint64_t(1) << 62); },
       {"header's 4611686018427387904 tokens", "train-00000.bin"}},
      {"dataset_tokens_2p62", [](const fs::path& r) { return dataset_with(r, 4, uint64_t(1) << 62); },
       {"4611686018427387904", "train-00000.bin"}},
      {"metrics_step_1e300", [](const fs::path& r) {  // was an undefined double → int64 cast in report
         const fs::path run = r / "run";
         fs::create_directory(run);
         test::write_bytes(run / "config.json", R"({"format": "upcycle-train-run", "options": {"steps": 4}})");
         test::write_bytes(run / "metrics.jsonl", R"({"kind": "train", "step": 1e300, "flops": 1, "tokens": 1, "loss": 1})" "\n");
         return std::vector<std::string>{"report", run.string(), "--out", (r / "report.html").string()};
       }, {"\"step\" is out of range", "metrics.jsonl"}},
      {"run_record_format_number", [](const fs::path& r) {  // was an nlohmann type_error (exit 70) on --resume
         fs::create_directories(r / "run" / "checkpoints");
         test::write_bytes(r / "run" / "config.json", R"({"format": 1, "options": {}})");
         return std::vector<std::string>{"train", "--out", (r / "run").string(), "--resume"};
       }, {"not a training run record", "config.json"}},
      {"tokenizer_id_2p31", [](const fs::path& r) { return tokenizer_with(r, R"({"a": 0, "b": 2147483647})"); },
       {"model.vocab[\"b\"]", "limit", "tokenizer.json"}},
      {"tokenizer_id_2p40", [](const fs::path& r) { return tokenizer_with(r, R"({"a": 0, "b": 1099511627776})"); },
       {"model.vocab[\"b\"]", "tokenizer.json"}},
  };
}

class HostileSizes : public ::testing::TestWithParam<HostileCase> {};

TEST_P(HostileSizes, FailFastWithOneLineErrorAndNoGiantAllocation) {
  const HostileCase& c = GetParam();
  test::ScratchDir root;
  auto good = test::run_upcycle({"init", "--arch", "llama", "--preset", "tiny", (root / "good").string()});
  ASSERT_EQ(good.exit_code, 0) << good.err;
  const auto args = c.prepare(root.path());
  const auto r = test::run_upcycle(args, {.cpu_seconds = 20, .address_space = kAddressSpace});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  ASSERT_EQ(r.err.rfind("upcycle: error: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "error must be one line: " << r.err;
  EXPECT_EQ(r.err.find("out of memory"), std::string::npos) << r.err;
  for (const auto& s : c.expected) EXPECT_NE(r.err.find(s), std::string::npos) << "missing '" << s << "' in: " << r.err;
}

INSTANTIATE_TEST_SUITE_P(Catalogue, HostileSizes, ::testing::ValuesIn(catalogue()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace upcycle
