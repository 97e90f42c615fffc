// Helpers for tests that run `upcycle train` and compare run directories (e2e/train_cli_test.cpp on
// the host backends, gpu/cuda_train_test.cpp on the GPU, dist/dist_train_test.cpp under mpirun): the learnable token stream and the tiny
// models' training flags those tests share, metrics records without wall-clock fields, checkpoint
// paths, and "run B equals run A" (checkpoint files byte for byte, metrics record for record).
// Header-only, like train_test_support.h.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/rng.h"
#include "support/test_support.h"
#include "support/train_test_support.h"

namespace upcycle::test {

// A learnable cycle over 11 ids with pseudo-random breaks (order matters), n tokens.
inline std::vector<uint32_t> noisy_cycle_ids(size_t n) {
  std::vector<uint32_t> ids(n);
  for (size_t i = 0; i < n; ++i)
    ids[i] = CounterRng(3, "ids").uniform(i) < 0.2 ? uint32_t(CounterRng(4, "ids").bits(i) % 11) : uint32_t(i % 11);
  return ids;
}

// What the train tests share, under dir: the tiny dense and MoE models (tiny_train_config, seed 7) in
// dense/ and moe/, and data/, a token dataset of 3000 noisy_cycle_ids with a cyclic validation split.
inline void write_train_inputs(const std::filesystem::path& dir) {
  write_tiny_model(dir / "dense", tiny_train_config(false), 7);
  write_tiny_model(dir / "moe", tiny_train_config(true), 7);
  write_dataset(dir / "data", "web", noisy_cycle_ids(3000), cyclic_tokens(90, 11, 0), 11);
}

// The MoE flags the resume tests add: jitter, expert bias, z-loss and an asymmetric Dirichlet prior
// whose gradient stops after step 12 (after a resume at 10).
inline std::vector<std::string> moe_resume_flags() {
  return {"--jitter", "0.1", "--expert-bias-rate", "0.01", "--z-loss-coef", "0.001", "--dirichlet-prior",
          "0.5,0.5,2,2", "--dirichlet-coef", "0.05", "--dirichlet-steps", "12"};
}

// The metrics.jsonl records of one kind ("train", "eval"), without the wall-clock field tokens_per_s.
inline std::vector<Json> read_records(const std::filesystem::path& run, const std::string& kind) {
  std::ifstream in(run / "metrics.jsonl");
  std::vector<Json> out;
  for (std::string line; std::getline(in, line);) {
    Json j = Json::parse(line);
    if (j["kind"] == kind) {
      j.erase("tokens_per_s");
      out.push_back(j);
    }
  }
  return out;
}

// args with --flag set to value (replaced when present, else appended).
inline std::vector<std::string> with(std::vector<std::string> args, const std::string& flag, const std::string& value) {
  auto it = std::find(args.begin(), args.end(), flag);
  if (it == args.end()) {
    args.insert(args.end(), {flag, value});
  } else {
    *(it + 1) = value;
  }
  return args;
}

inline std::string ckpt(const std::filesystem::path& run, int step) {
  char name[32];
  std::snprintf(name, sizeof name, "step-%08d", step);
  return (run / "checkpoints" / name).string();
}

// Run b equals run a: the step-`step` checkpoint's files byte for byte, the metrics record for record.
inline void expect_same_runs(const std::filesystem::path& a, const std::filesystem::path& b, int step) {
  namespace fs = std::filesystem;
  for (const char* f : {"model.safetensors", "optimizer.safetensors", "trainer_state.json", "config.json"})
    EXPECT_TRUE(read_bytes(fs::path(ckpt(a, step)) / f) == read_bytes(fs::path(ckpt(b, step)) / f))
        << f << " differs from the straight run's";
  for (const char* kind : {"train", "eval"}) {
    const auto ra = read_records(a, kind), rb = read_records(b, kind);
    ASSERT_EQ(ra.size(), rb.size()) << kind;
    for (size_t i = 0; i < ra.size(); ++i) EXPECT_EQ(ra[i].dump(), rb[i].dump()) << kind << " record " << i;
  }
}

}  // namespace upcycle::test
