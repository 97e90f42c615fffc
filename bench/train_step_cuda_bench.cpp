// Training-step benchmark on the cuda backend (issue 17 part 5): one full step — zero_grads, forward,
// loss, backward, global-norm clipping to 1.0, AdamW — of a ~0.5B dense Llama and its 8-expert top-2
// upcycle (bench_models.h: dense_gpu_bench_config / moe_gpu_bench_config), the same step
// bench_train_step times on the CPU backends. Reports ms per step (median of --steps after --warmup),
// tokens/s, achieved TFLOP/s and MFU = model FLOPs per step / step time / the GPU's peak.
// Model FLOPs are train_step_model.h's analytic count (6·N_active + attention; what MFU conventionally
// counts, so recomputation or wasted work never raises it). Peak: dense bf16 tensor-core FLOP/s without
// sparsity, from NVIDIA's datasheets — H100 SXM5 989.4 TFLOP/s ("NVIDIA H100 Tensor Core GPU"
// datasheet, BF16 Tensor Core 1,979 TFLOPS with sparsity, half without), H200 SXM the same 989 ("NVIDIA
// H200 Tensor Core GPU" datasheet), H100 PCIe 756. Another card prints no MFU until its row is added.
// Usage: bench_train_step_cuda [--batch=4] [--seq=1024] [--steps=10] [--warmup=3] [--cases=dense,moe]
// Its PyTorch counterpart: bench/torch_train_step.py --device cuda [--compile] (scripts/bench … train-cuda).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda_module.h"
#include "backend/host_memory.h"
#include "bench_models.h"
#include "core/error.h"
#include "core/rng.h"
#include "model/transformer.h"
#include "train/adamw.h"
#include "train_step_model.h"

using namespace upcycle;

namespace {

struct PeakRow {
  const char* name_part;  // matched against the driver's device name
  double bf16_dense_tflops;
};
constexpr PeakRow kPeaks[] = {{"H200", 989.4}, {"H100 PCIe", 756.0}, {"H100", 989.4}};

double peak_tflops(const std::string& device) {
  for (const PeakRow& row : kPeaks)
    if (device.find(row.name_part) != std::string::npos) return row.bf16_dense_tflops;
  return 0.0;
}

struct Options {
  int64_t batch = 4, seq = 1024, steps = 10, warmup = 3;
  std::string cases = "dense,moe";
};

// Median seconds per step of one model; prints the loss at init so runs can be compared.
double time_case(bool moe, const Options& o, backend::Backend& be) {
  const ModelConfig dc = dense_gpu_bench_config();
  const ModelConfig config = moe ? moe_gpu_bench_config() : dc;
  model::Transformer m(config, be);
  {
    model::TensorStore host = model::TensorStore::for_config(config, backend::host_memory());
    if (moe) {
      model::TensorStore dense = model::TensorStore::for_config(dc, backend::host_memory());
      bench::fill_dense(dense);
      bench::fill_upcycled(host, dense);
    } else {
      bench::fill_dense(host);
    }
    m.params().buffer().upload(host.buffer().to_host());
  }
  if (moe) m.set_moe_options(model::moe_options_from_config(config));
  m.set_phase(model::Phase::kTraining, 1);
  const int64_t T = o.batch * o.seq;
  std::vector<int32_t> ids(static_cast<size_t>(T)), targets(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) ids[size_t(t)] = int32_t(CounterRng(11, "ids").bits(uint64_t(t)) % uint64_t(config.vocab_size));
  for (int64_t t = 0; t < T; ++t) targets[size_t(t)] = (t + 1) % o.seq == 0 ? -1 : ids[size_t(t + 1)];
  train::AdamW adamw(be, m.params().specs(), {0.9, 0.95, 1e-8, 0.1});  // the trainer's defaults
  auto step = [&] {
    m.zero_grads();
    m.forward(ids.data(), o.batch, o.seq);
    const double loss = m.loss(targets.data());
    m.backward();
    float* grads = m.grads().data();
    const int64_t n = int64_t(m.grads().size());
    const double factor = train::clip_factor(be.l2_norm(grads, n), 1.0);
    if (factor != 1.0) be.scale(grads, factor, n);
    adamw.step(m.params().data(), grads, 3e-4);
    be.synchronize();  // the step ends when the GPU is done, not when the last op is queued
    return loss;
  };
  const double init_loss = step();
  for (int64_t i = 1; i < o.warmup; ++i) step();
  std::vector<double> s;
  for (int64_t i = 0; i < o.steps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    step();
    s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(s.begin(), s.end());
  const size_t mid = s.size() / 2;
  std::printf("# %s: loss at init %.6f\n", moe ? "moe" : "dense", init_loss);
  return s.size() % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    if (std::strncmp(a, "--batch=", 8) == 0) o.batch = std::atoll(a + 8);
    else if (std::strncmp(a, "--seq=", 6) == 0) o.seq = std::atoll(a + 6);
    else if (std::strncmp(a, "--steps=", 8) == 0) o.steps = std::atoll(a + 8);
    else if (std::strncmp(a, "--warmup=", 9) == 0) o.warmup = std::atoll(a + 9);
    else if (std::strncmp(a, "--cases=", 8) == 0) o.cases = a + 8;
    else {
      std::fprintf(stderr, "usage: bench_train_step_cuda [--batch=4] [--seq=1024] [--steps=10] [--warmup=3] "
                           "[--cases=dense,moe]\n");
      return 2;
    }
  }
  if (o.batch < 1 || o.seq < 2 || o.steps < 1 || o.warmup < 1) {
    std::fprintf(stderr, "bench_train_step_cuda: --batch ≥ 1, --seq ≥ 2, --steps ≥ 1, --warmup ≥ 1\n");
    return 2;
  }
  try {
    auto be = backend::make_backend(backend::BackendKind::kCuda);
    const std::string device = backend::cuda_device_name();
    const double peak = peak_tflops(device);
    std::printf("device: %s, peak bf16 dense %s TFLOP/s; batch %lld × seq %lld, median of %lld steps after %lld\n",
                device.c_str(), peak > 0 ? std::to_string(peak).c_str() : "unknown", (long long)o.batch,
                (long long)o.seq, (long long)o.steps, (long long)o.warmup);
    std::printf("%-12s %10s %12s %10s %8s\n", "case", "ms/step", "tokens/s", "TFLOP/s", "MFU");
    for (bool moe : {false, true}) {
      if (o.cases.find(moe ? "moe" : "dense") == std::string::npos) continue;
      const ModelConfig c = moe ? moe_gpu_bench_config() : dense_gpu_bench_config();
      const double sec = time_case(moe, o, *be);
      const double tflops = bench::step_flops(c, o.batch, o.seq) / sec / 1e12;
      char mfu[32] = "-";
      if (peak > 0) std::snprintf(mfu, sizeof mfu, "%.1f%%", 100.0 * tflops / peak);
      std::printf("%-12s %10.1f %12.0f %10.1f %8s\n", moe ? "moe_cuda" : "dense_cuda", sec * 1e3,
                  double(o.batch * o.seq) / sec, tflops, mfu);
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_train_step_cuda: %s\n", e.message().c_str());
    return 2;
  }
  return 0;
}
