// Helpers for trainer tests: tiny dense and MoE checkpoints written with io/random_init (plus a
// dummy tokenizer.json side file, to see it carried into training checkpoints), dataset directories
// written byte by byte from the format in data/token_shard.h and data/token_dataset.h (independent of
// the data library's writer), a learnable token stream, and the training options the tests share.
// Header-only, like model_test_support.h.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/json.h"
#include "io/model_config.h"
#include "io/random_init.h"
#include "support/model_test_support.h"
#include "support/test_support.h"

namespace upcycle::test {

// Llama D=8 L=2 H=2 KV=1 S=4 F=12 V=11 (tiny_model_config); the MoE twin is Mixtral E=4 top-2.
inline ModelConfig tiny_train_config(bool moe) {
  ModelConfig dense = tiny_model_config(Family::kLlama);
  if (!moe) return dense;
  ModelConfig c = moe_twin(dense, Family::kMixtral, 4, 2);
  c.router_aux_loss_coef = 0.01;
  return c;
}

inline void write_tiny_model(const std::filesystem::path& dir, const ModelConfig& config, uint64_t seed) {
  std::filesystem::create_directories(dir);
  write_model_config(dir, config);
  RandomInitOptions init;
  init.seed = seed;
  init.show_progress = false;
  write_random_weights(config, init, dir);
  write_bytes(dir / "tokenizer.json", "{\"test\": \"carried byte for byte\"}\n");
}

// One shard: the 32-byte header of token_shard.h, then the ids as uint16 (vocab ≤ 65536) or uint32.
inline std::string shard_bytes(const std::vector<uint32_t>& ids, uint64_t vocab) {
  const uint32_t width = vocab <= 65536 ? 2 : 4;
  std::string out("UPCYTOK", 8);
  auto put = [&out](uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out += char((v >> (8 * i)) & 0xff);
  };
  put(1, 4);
  put(width, 4);
  put(ids.size(), 8);
  put(vocab, 8);
  for (uint32_t id : ids) put(id, int(width));
  return out;
}

// A dataset directory with one train shard and (when val is not empty) one val shard.
inline void write_dataset(const std::filesystem::path& dir, const std::string& domain, const std::vector<uint32_t>& train,
                          const std::vector<uint32_t>& val, uint64_t vocab) {
  std::filesystem::create_directories(dir);
  write_bytes(dir / "train-00000.tok", shard_bytes(train, vocab));
  Json splits = {{"train", Json::array({{{"file", "train-00000.tok"}, {"tokens", train.size()}}})}};
  if (!val.empty()) {
    write_bytes(dir / "val-00000.tok", shard_bytes(val, vocab));
    splits["val"] = Json::array({{{"file", "val-00000.tok"}, {"tokens", val.size()}}});
  }
  Json j = {{"format", "upcycle-tokens"}, {"version", 1},   {"domain", domain}, {"vocab_size", vocab},
            {"tokenizer", Json::object()}, {"sources", Json::array()}, {"splits", splits}};
  write_bytes(dir / "dataset.json", j.dump(2));
}

// A learnable stream: the cycle first, first+1, …, first+period−1 repeated (next token = a function
// of the current one), n tokens.
inline std::vector<uint32_t> cyclic_tokens(size_t n, uint32_t period, uint32_t first = 0) {
  std::vector<uint32_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = first + uint32_t(i % period);
  return ids;
}

}  // namespace upcycle::test
