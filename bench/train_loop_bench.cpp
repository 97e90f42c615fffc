// Trainer overhead (issue 5: "< 5 % over the raw engine step at the bench model size; data loading
// never the bottleneck"): the `base` preset of bench/train_step_bench.cpp (V=8192 D=512 L=8, fp32) and
// its 8-expert top-2 Mixtral twin, batch 4 × 512 tokens, cpu backend, both in one process:
//   raw      zero_grads → forward → loss → backward → AdamW step, one fixed batch held in memory
//   trainer  train::Trainer::step() + log_step(): batcher.next (pread from a token shard), micro-batch
//            statistics, global gradient norm, clipping, schedule, AdamW, counters, metrics.jsonl and
//            TensorBoard records
// Steps alternate (raw, trainer, raw, …) after warm-up so machine load affects both alike; medians.
// Prints the overhead % two ways: trainer step ÷ raw step (medians; noisy on a loaded machine), and
// within each trainer step the time outside forward/loss/backward/AdamW over the time inside them
// (both halves slow down alike under load, so this ratio is the robust one), plus the data share.
// Usage: bench_train_loop [--steps=N] [--batch=B] [--seq=L] [--dir=SCRATCH]  (scripts/bench build trainer)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "bench_models.h"
#include "bench_train_inputs.h"
#include "core/json.h"
#include "core/rng.h"
#include "data/token_shard.h"
#include "io/model_presets.h"
#include "io/random_init.h"
#include "model/load_model.h"
#include "train/adamw.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
using namespace upcycle;

namespace {

int64_t g_steps = 5, g_batch = 4, g_seq = 512;

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

ModelConfig bench_config(bool moe) { return moe ? moe_bench_config() : dense_bench_config(); }

struct Result {
  double raw = 0, trainer = 0, data = 0, tokens_per_s_raw = 0;
};

Result bench(bool moe, const fs::path& scratch) {
  const ModelConfig config = bench_config(moe);
  const fs::path model_dir = scratch / (moe ? "moe" : "dense"), data_dir = scratch / "data";
  write_bench_model(model_dir, config);
  write_bench_data(data_dir, uint64_t(config.vocab_size), uint64_t((2 * g_steps + 8) * g_batch * (g_seq + 1)));
  fs::remove_all(scratch / "run");

  train::TrainOptions o;
  o.model = model_dir.string();
  o.data = {data_dir.string()};
  o.out = (scratch / "run").string();
  o.steps = 1000;
  o.micro_batch = g_batch;
  o.seq_len = g_seq;
  train::Trainer trainer(o, Json::object(), train::RunMode::kFresh);
  Progress progress("bench", 1000, "steps");

  auto be = backend::make_backend(backend::BackendKind::kCpu);
  auto raw = model::load_transformer(config, model_dir, *be);
  if (config.is_moe()) raw->set_moe_options(train::resolve_moe_options(o, config));
  train::AdamW adamw(*be, raw->params().specs(), {o.beta1, o.beta2, o.eps, o.weight_decay});
  const int64_t T = g_batch * g_seq;
  std::vector<int32_t> ids(static_cast<size_t>(T)), targets(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) {
    ids[size_t(t)] = int32_t(CounterRng(6, "ids").bits(uint64_t(t)) % uint64_t(config.vocab_size));
    targets[size_t(t)] = int32_t(CounterRng(7, "ids").bits(uint64_t(t)) % uint64_t(config.vocab_size));
  }
  auto raw_step = [&] {
    raw->zero_grads();
    raw->set_phase(model::Phase::kTraining, 1);
    raw->forward(ids.data(), g_batch, g_seq);
    raw->loss(targets.data());
    raw->backward();
    adamw.step(raw->params().data(), raw->grads().data(), o.lr);
  };
  raw_step();  // warm-up: first touch of activations, gradients and moments
  trainer.log_step(trainer.step(), progress);
  std::vector<double> raw_s, trainer_s, data_share, inside;
  for (int64_t s = 0; s < g_steps; ++s) {
    double t0 = now_s();
    raw_step();
    raw_s.push_back(now_s() - t0);
    t0 = now_s();
    const train::StepResult r = trainer.step();
    trainer.log_step(r, progress);
    trainer_s.push_back(now_s() - t0);
    data_share.push_back(r.data_seconds / trainer_s.back());
    // The same step split: everything but forward/loss/backward/AdamW, over those (load-independent).
    inside.push_back((trainer_s.back() - r.engine_seconds) / r.engine_seconds);
  }
  Result res{median(raw_s), median(trainer_s), median(data_share), double(T) / median(raw_s)};
  std::printf("%-6s raw engine step %8.1f ms   trainer step %8.1f ms   ratio %+6.2f %%   bookkeeping inside the "
              "trainer step %+6.2f %% of its engine time   data loading %.4f %% of the trainer step   (raw %.0f "
              "tokens/s; per-step ms raw/trainer:",
              moe ? "moe" : "dense", res.raw * 1e3, res.trainer * 1e3, 100 * (res.trainer / res.raw - 1),
              100 * median(inside), 100 * res.data, res.tokens_per_s_raw);
  for (size_t i = 0; i < raw_s.size(); ++i) std::printf(" %.0f/%.0f", raw_s[i] * 1e3, trainer_s[i] * 1e3);
  std::printf(")\n");
  std::fflush(stdout);
  return res;
}

}  // namespace

int main(int argc, char** argv) {
  fs::path scratch = fs::temp_directory_path() / "upcycle-bench-train-loop";
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--steps=", 8) == 0) g_steps = std::atoll(argv[i] + 8);
    else if (std::strncmp(argv[i], "--batch=", 8) == 0) g_batch = std::atoll(argv[i] + 8);
    else if (std::strncmp(argv[i], "--seq=", 6) == 0) g_seq = std::atoll(argv[i] + 6);
    else if (std::strncmp(argv[i], "--dir=", 6) == 0) scratch = argv[i] + 6;
    else {
      std::fprintf(stderr, "usage: bench_train_loop [--steps=N] [--batch=B] [--seq=L] [--dir=SCRATCH]\n");
      return 2;
    }
  }
  std::printf("trainer vs raw engine step: base preset, batch %lld × seq %lld, cpu backend fp32, %lld timed steps "
              "each (alternating), medians\n",
              (long long)g_batch, (long long)g_seq, (long long)g_steps);
  fs::create_directories(scratch);
  bench(false, scratch);
  bench(true, scratch);
  fs::remove_all(scratch / "run");
  return 0;
}
