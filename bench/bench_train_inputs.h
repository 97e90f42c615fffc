// The inputs the training benchmarks write once into their scratch directory: a randomly initialised
// checkpoint of a bench model (bench_models.h) and a dataset of uniformly random ids, both skipped when
// already there. One definition for bench_train_loop and bench_dist_train. Header-only.
#pragma once

#include <cstdio>
#include <filesystem>
#include <vector>

#include "core/json.h"
#include "core/rng.h"
#include "data/token_shard.h"
#include "io/model_config.h"
#include "io/random_init.h"

namespace upcycle {

inline void write_bench_model(const std::filesystem::path& dir, const ModelConfig& config) {
  if (std::filesystem::exists(dir / "config.json")) return;
  std::filesystem::create_directories(dir);
  write_model_config(dir, config);
  RandomInitOptions init;
  init.seed = 1;
  init.show_progress = false;
  write_random_weights(config, init, dir);
}

// A dataset of uniformly random ids (dataset.json as data/token_dataset.h specifies it).
inline void write_bench_data(const std::filesystem::path& dir, uint64_t vocab, uint64_t tokens) {
  if (std::filesystem::exists(dir / "dataset.json")) return;
  std::filesystem::create_directories(dir);
  std::vector<uint32_t> ids(tokens);
  for (uint64_t i = 0; i < tokens; ++i) ids[i] = uint32_t(CounterRng(5, "bench").bits(i) % vocab);
  data::write_token_shard(dir / "train-00000.tok", ids, vocab);
  Json j = {{"format", "upcycle-tokens"}, {"version", 1},   {"domain", "random"}, {"vocab_size", vocab},
            {"tokenizer", Json::object()}, {"sources", Json::array()},
            {"splits", {{"train", Json::array({{{"file", "train-00000.tok"}, {"tokens", tokens}}})}}}};
  FILE* f = std::fopen((dir / "dataset.json").c_str(), "w");
  std::fputs(j.dump(2).c_str(), f);
  std::fclose(f);
}

}  // namespace upcycle
