// Data-parallel scaling (issue 18): the dense `base` bench model (bench_models.h; V=8192 D=512 L=8,
// fp32, cpu backend) trained with one global batch of G micro-batches × B × L tokens, by however many
// processes mpirun started (each runs G/N micro-batches: --grad-accum G/N). Run it under `mpirun -np 1`
// and `-np 2` with one thread each (scripts/bench dist does both); rank 0 prints the median step time,
// tokens/s, and the share of the step spent in the gradient/statistics reduction (StepResult::comm_seconds,
// which includes waiting for the slower rank). Given the 1-process step time (--one-process-step=S) it
// also prints the scaling efficiency: S / (N × step time N).
// Usage: bench_dist_train [--steps=N] [--global-micro=G] [--batch=B] [--seq=L] [--one-process-step=S] [--dir=SCRATCH]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "bench_models.h"
#include "bench_train_inputs.h"
#include "dist/process_group.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
using namespace upcycle;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int64_t steps = 4, global_micro = 4, batch = 2, seq = 512;
  double one_process_step = 0;
  fs::path scratch = fs::temp_directory_path() / "upcycle-bench-dist-train";
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--steps=", 8) == 0) steps = std::atoll(argv[i] + 8);
    else if (std::strncmp(argv[i], "--global-micro=", 15) == 0) global_micro = std::atoll(argv[i] + 15);
    else if (std::strncmp(argv[i], "--batch=", 8) == 0) batch = std::atoll(argv[i] + 8);
    else if (std::strncmp(argv[i], "--seq=", 6) == 0) seq = std::atoll(argv[i] + 6);
    else if (std::strncmp(argv[i], "--one-process-step=", 19) == 0) one_process_step = std::atof(argv[i] + 19);
    else if (std::strncmp(argv[i], "--dir=", 6) == 0) scratch = argv[i] + 6;
    else {
      std::fprintf(stderr, "usage: bench_dist_train [--steps=N] [--global-micro=G] [--batch=B] [--seq=L] "
                           "[--one-process-step=S] [--dir=SCRATCH]\n");
      return 2;
    }
  }
  const auto group = dist::open_process_group();
  const int N = group->size();
  if (global_micro % N != 0) {
    std::fprintf(stderr, "bench_dist_train: --global-micro %lld is not a multiple of %d processes\n",
                 (long long)global_micro, N);
    return 2;
  }
  const ModelConfig config = dense_bench_config();
  const fs::path model_dir = scratch / "dense", data_dir = scratch / "data", run = scratch / "run";
  if (group->rank() == 0) {
    write_bench_model(model_dir, config);
    write_bench_data(data_dir, uint64_t(config.vocab_size), uint64_t((steps + 2) * global_micro * batch * (seq + 1)));
    fs::remove_all(run);
  }
  group->barrier();

  train::TrainOptions o;
  o.model = model_dir.string();
  o.data = {data_dir.string()};
  o.out = run.string();
  o.steps = 1000;
  o.micro_batch = batch;
  o.seq_len = seq;
  o.grad_accum = global_micro / N;
  train::Trainer trainer(o, Json::object(), train::RunMode::kFresh, {}, *group);
  trainer.step();  // warm-up: first touch of activations, gradients and moments
  std::vector<double> step_s, comm_share;
  for (int64_t s = 0; s < steps; ++s) {
    const train::StepResult r = trainer.step();
    step_s.push_back(r.seconds);
    comm_share.push_back(r.comm_seconds / r.seconds);
  }
  if (group->rank() == 0) {
    const double t = median(step_s);
    std::printf("dp N=%d: global batch %lld × %lld × %lld tokens, --grad-accum %lld per process; step %.3f s (median of "
                "%lld), %.0f tokens/s, reduction of %.1f MB of gradients %.1f %% of the step",
                N, (long long)global_micro, (long long)batch, (long long)seq, (long long)o.grad_accum, t,
                (long long)steps, double(trainer.tokens_per_step()) / t,
                double(trainer.model().grads().size()) * sizeof(float) / 1e6, 100 * median(comm_share));
    if (one_process_step > 0) std::printf("; scaling efficiency %.1f %%", 100 * one_process_step / (N * t));
    std::printf("\nstep_seconds=%.6f\n", t);
  }
  group->barrier();
  if (group->rank() == 0) fs::remove_all(run);
  return 0;
}
