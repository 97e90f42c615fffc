// Training-step benchmark (issue "Engine"): one full training step — zero_grads, forward, loss,
// backward, global-norm clipping to 1.0, AdamW (train/adamw.h) — of the dense `base` preset (V=8192
// D=512 L=8 H=KV=8 F=1408) and of its 8-expert top-2 Mixtral-style upcycle, on the cpu backend in fp32
// and in cpu-bf16 (matmul inputs rounded to bf16, fp32 accumulation, fp32 master weights, gradients and
// moments), next to the machine's sgemm and bf16 GEMM (through the backends' linear_forward,
// conversions included) measured in the same run. Train steps: --warmup untimed steps, then the median
// of --steps timed steps (the same statistic bench/torch_train_step.py reports).
// FLOPs are analytic (Kaplan et al. 2020, training = 3× forward; the optimizer is not counted):
//   per token 6·N_active + 6·L·Tseq·D, N_active = matmul weights a token passes through (q,k,v,o,
//   FFN or router + top-k experts, lm_head; not the embedding lookup); the second term is QKᵀ and PV
//   over the causal half of the score matrix (exact for causal attention).
// Usage: bench_train_step [--batch=4] [--seq=512] [--steps=5] [--warmup=2] [--torch=FILE]
// (FILE: the output of bench/torch_train_step.py, the same models in transformers; scripts/bench
// passes it so the tables show upcycle cpu / cpu-bf16 against PyTorch fp32 and bf16 autocast).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <span>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench_models.h"
#include "train_step_model.h"
#include "kernel_info.h"
#include "peak_rss.h"
#include "backend/backend.h"
#include "backend/host_memory.h"
#include "core/units.h"
#include "io/model_presets.h"
#include "model/transformer.h"
#include "train/adamw.h"
#include "support/model_test_support.h"

using namespace upcycle;

namespace {

using upcycle::bench::active_matmul_params;
using upcycle::bench::fill_dense;
using upcycle::bench::fill_upcycled;
using upcycle::bench::peak_rss_bytes;
using upcycle::bench::step_flops;
using upcycle::bench::reset_peak_rss;

int64_t g_batch = 4, g_seq = 512, g_steps = 5, g_warmup = 2;

struct CaseResult {
  double seconds = 0;       // per iteration (train steps: the median step)
  double flops = 0;         // per iteration
  double tokens = 0;        // per iteration (0 for sgemm)
  double loss = 0;          // loss of the warm-up step (train steps): the model at init
  std::vector<double> steps;  // every timed step's seconds, in order (train steps)
  uint64_t peak_rss = 0;
};
std::map<std::string, CaseResult> g_results;

backend::Backend& backend_of(backend::BackendKind kind) {
  static std::map<backend::BackendKind, std::unique_ptr<backend::Backend>> backends;
  auto& be = backends[kind];
  if (!be) be = backend::make_backend(kind);
  return *be;
}


void record(benchmark::State& state, const std::string& name, double flops, double tokens) {
  auto& r = g_results[name];
  r.flops = flops;
  r.tokens = tokens;
  r.peak_rss = peak_rss_bytes();
  state.counters["GFLOP/s"] = benchmark::Counter(flops / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  if (tokens > 0) state.counters["tokens/s"] = benchmark::Counter(tokens, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["peak_rss_MB"] = double(r.peak_rss) / 1e6;
}

void register_gemm(const std::string& name, backend::BackendKind kind, int64_t M, int64_t K, int64_t N) {
  benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& state) {
    backend::Backend& be = backend_of(kind);
    reset_peak_rss();
    std::vector<float> x(size_t(M * K)), w(size_t(N * K)), y(size_t(M * N));
    std::mt19937 gen(7);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (float& v : x) v = nd(gen);
    for (float& v : w) v = nd(gen);
    be.linear_forward(y.data(), x.data(), w.data(), nullptr, M, K, N);  // warm-up: buffers, threads, JIT
    for (auto _ : state) {
      be.linear_forward(y.data(), x.data(), w.data(), nullptr, M, K, N);
      benchmark::DoNotOptimize(y.data());
    }
    record(state, name, 2.0 * double(M) * double(K) * double(N), 0);
  })->MinTime(2.0)->UseRealTime()->Unit(benchmark::kMillisecond);
}

void register_train_step(const std::string& name, bool moe, backend::BackendKind kind) {
  benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& state) {
    reset_peak_rss();
    const ModelConfig dc = dense_bench_config();
    const ModelConfig config = moe ? moe_bench_config() : dc;
    auto be = &backend_of(kind);
    model::Transformer m(config, *be);
    if (moe) {
      model::TensorStore dense = model::TensorStore::for_config(dc, backend::host_memory());
      fill_dense(dense);
      fill_upcycled(m.params(), dense);
      m.set_moe_options(model::moe_options_from_config(config));
    } else {
      fill_dense(m.params());
    }
    m.set_phase(model::Phase::kTraining, 1);
    const int64_t T = g_batch * g_seq;
    std::vector<int32_t> ids(static_cast<size_t>(T)), targets(static_cast<size_t>(T));
    std::mt19937 gen(11);
    std::uniform_int_distribution<int32_t> tok(0, int32_t(config.vocab_size - 1));
    for (auto& id : ids) id = tok(gen);
    // Next-token targets within each sequence; the last position of a sequence is ignored.
    for (int64_t t = 0; t < T; ++t) targets[size_t(t)] = (t + 1) % g_seq == 0 ? -1 : ids[size_t(t + 1)];
    // The trainer's defaults (train/trainer_options.h): AdamW β (0.9, 0.95), ε 1e-8, weight decay 0.1
    // (not on norms), clipping to 1.0; lr 3e-4. torch_train_step.py uses the same.
    train::AdamW adamw(*be, m.params().specs(), {0.9, 0.95, 1e-8, 0.1});
    auto step = [&] {
      m.zero_grads();
      m.forward(ids.data(), g_batch, g_seq);
      const double loss = m.loss(targets.data());
      m.backward();
      float* grads = m.grads().data();
      const size_t n = m.grads().size();
      const double factor = train::clip_factor(be->l2_norm(grads, int64_t(n)), 1.0);
      if (factor != 1.0) be->scale(grads, factor, int64_t(n));
      adamw.step(m.params().data(), grads, 3e-4);
      return loss;
    };
    // Warm-up: first touch of activations, gradients and moments, oneDNN JIT. The first loss is at init.
    const double init_loss = step();
    for (int64_t i = 1; i < g_warmup; ++i) step();
    std::vector<double> step_s;  // seconds per timed step
    for (auto _ : state) {
      const auto t0 = std::chrono::steady_clock::now();
      benchmark::DoNotOptimize(step());
      step_s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    record(state, name, step_flops(config, g_batch, g_seq), double(T));
    g_results[name].steps = step_s;
    std::sort(step_s.begin(), step_s.end());  // the median, as Python's statistics.median
    const size_t mid = step_s.size() / 2;
    g_results[name].seconds = step_s.size() % 2 ? step_s[mid] : (step_s[mid - 1] + step_s[mid]) / 2;
    g_results[name].loss = init_loss;
  })->Iterations(g_steps)->UseRealTime()->Unit(benchmark::kMillisecond);
}

class RecordingReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& run : runs) {
      auto name = run.benchmark_name();
      if (auto cut = name.find('/'); cut != std::string::npos) name = name.substr(0, cut);
      auto& seconds = g_results[name].seconds;
      if (seconds == 0) seconds = run.GetAdjustedRealTime() / 1e3;  // GEMMs: the mean; steps set their median
    }
    ConsoleReporter::ReportRuns(runs);
  }
};

// bench/torch_train_step.py's output: "torch_case name=moe_bf16 ms_per_step=… tokens_per_s=…" lines
// (case names dense, moe, dense_bf16, moe_bf16) and the "torch_train_step torch=VERSION …" summary.
struct TorchResults {
  std::map<std::string, double> ms, tokens_per_s;  // by case name
  std::string version = "?";
};

TorchResults read_torch(const std::string& path) {
  TorchResults out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::map<std::string, std::string> kv;
    std::istringstream words(line);
    std::string head, word;
    words >> head;
    while (words >> word)
      if (auto eq = word.find('='); eq != std::string::npos) kv[word.substr(0, eq)] = word.substr(eq + 1);
    if (head == "torch_case" && kv.count("name")) {
      out.ms[kv["name"]] = std::atof(kv["ms_per_step"].c_str());
      out.tokens_per_s[kv["name"]] = std::atof(kv["tokens_per_s"].c_str());
    } else if (head == "torch_train_step" && kv.count("torch")) {
      out.version = kv["torch"];
    }
  }
  return out;
}

double tok_s(const std::string& n) {
  const auto& r = g_results[n];
  return r.seconds > 0 ? r.tokens / r.seconds : 0.0;
}

// One table: every training step of this run, upcycle's and PyTorch's, then upcycle ÷ PyTorch in
// tokens/s; plus "result …" / "ratio …" lines for scripts (scripts/bench train-paired reads them).
void print_comparison(const TorchResults& torch) {
  struct Side {
    const char* label;
    const char* upcycle_suffix;  // "" | "_bf16": upcycle case; PyTorch case name suffix likewise
  };
  std::printf("\ntraining step (zero_grad, forward, loss, backward, clip 1.0, AdamW), median step\n");
  std::printf("%-6s %-28s %10s %10s\n", "model", "side", "ms/step", "tokens/s");
  for (const char* model : {"dense", "moe"}) {
    const std::string ours = std::string("train_step_") + model;
    for (const auto& [label, suffix] : {Side{"upcycle cpu (fp32)", ""}, Side{"upcycle cpu-bf16", "_bf16"}}) {
      const auto& r = g_results[ours + suffix];
      if (r.seconds <= 0) continue;  // filtered out
      std::printf("%-6s %-28s %10.0f %10.0f\n", model, label, r.seconds * 1e3, tok_s(ours + suffix));
      std::printf("result side=upcycle backend=%s model=%s ms_per_step=%.1f tokens_per_s=%.1f steps_ms=",
                  *suffix ? "cpu-bf16" : "cpu", model, r.seconds * 1e3, tok_s(ours + suffix));
      for (size_t i = 0; i < r.steps.size(); ++i) std::printf("%s%.0f", i ? "," : "", r.steps[i] * 1e3);
      std::printf("\n");
    }
    for (const auto& [label, suffix] : {Side{"PyTorch fp32", ""}, Side{"PyTorch bf16 autocast", "_bf16"}}) {
      const std::string c = std::string(model) + suffix;
      if (!torch.ms.count(c)) continue;
      std::printf("%-6s %-28s %10.0f %10.0f\n", model, label, torch.ms.at(c), torch.tokens_per_s.at(c));
    }
  }
  if (torch.ms.empty()) {
    std::printf("(no PyTorch results: run bench/torch_train_step.py and pass --torch=FILE)\n");
    return;
  }
  std::printf("\nupcycle tokens/s ÷ PyTorch %s tokens/s (same run; > 1: upcycle faster)\n", torch.version.c_str());
  std::printf("%-6s %-18s %14s %24s\n", "model", "upcycle", "÷ PyTorch fp32", "÷ PyTorch bf16 autocast");
  for (const char* model : {"dense", "moe"}) {
    for (const char* suffix : {"", "_bf16"}) {
      const double ours = tok_s(std::string("train_step_") + model + suffix);
      if (ours <= 0) continue;
      double ratio[2] = {0, 0};
      const char* torch_suffix[2] = {"", "_bf16"};
      for (int k = 0; k < 2; ++k) {
        const auto it = torch.tokens_per_s.find(std::string(model) + torch_suffix[k]);
        if (it == torch.tokens_per_s.end() || it->second <= 0 || ours <= 0) continue;
        ratio[k] = ours / it->second;
        std::printf("ratio model=%s upcycle=%s torch=%s value=%.3f\n", model, *suffix ? "cpu-bf16" : "cpu",
                    k ? "bf16" : "fp32", ratio[k]);
      }
      std::printf("%-6s %-18s %14.2f %24.2f\n", model, *suffix ? "cpu-bf16" : "cpu (fp32)", ratio[0], ratio[1]);
    }
  }
  std::printf("goal (issue 16): cpu-bf16 ÷ PyTorch bf16 autocast ≥ 1.5, dense and MoE\n");
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  std::string torch_file;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--batch=", 8) == 0) g_batch = std::atoll(argv[i] + 8);
    else if (std::strncmp(argv[i], "--seq=", 6) == 0) g_seq = std::atoll(argv[i] + 6);
    else if (std::strncmp(argv[i], "--steps=", 8) == 0) g_steps = std::atoll(argv[i] + 8);
    else if (std::strncmp(argv[i], "--warmup=", 9) == 0) g_warmup = std::atoll(argv[i] + 9);
    else if (std::strncmp(argv[i], "--torch=", 8) == 0) torch_file = argv[i] + 8;
    else {
      std::fprintf(stderr, "usage: bench_train_step [--batch=N] [--seq=N] [--steps=N] [--warmup=N] [--torch=FILE]\n");
      return 2;
    }
  }
  if (g_steps < 1 || g_warmup < 1) {
    std::fprintf(stderr, "bench_train_step: --steps and --warmup must be ≥ 1\n");
    return 2;
  }
  upcycle::bench::print_kernel_info();
  const int64_t B = g_batch, Tseq = g_seq;
  using backend::BackendKind;
  register_gemm("sgemm_2048x2048x2048", BackendKind::kCpu, 2048, 2048, 2048);
  register_gemm("sgemm_model_ffn", BackendKind::kCpu, B * Tseq, 512, 1408);
  register_gemm("bf16gemm_2048x2048x2048", BackendKind::kCpuBF16, 2048, 2048, 2048);
  register_gemm("bf16gemm_model_ffn", BackendKind::kCpuBF16, B * Tseq, 512, 1408);
  register_train_step("train_step_dense", false, BackendKind::kCpu);
  register_train_step("train_step_moe", true, BackendKind::kCpu);
  register_train_step("train_step_dense_bf16", false, BackendKind::kCpuBF16);
  register_train_step("train_step_moe_bf16", true, BackendKind::kCpuBF16);
  RecordingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);

  auto gflops = [](const std::string& n) {
    const auto& r = g_results[n];
    return r.seconds > 0 ? r.flops / r.seconds / 1e9 : 0.0;
  };
  const ModelConfig dc = dense_bench_config(), mc = moe_bench_config();
  std::printf("\nmodel: base preset, batch %lld × seq %lld = %lld tokens/step, fp32 master weights, gradients and "
              "AdamW moments; train steps: %lld warm-up, median of %lld\n",
              (long long)B, (long long)Tseq, (long long)(B * Tseq), (long long)g_warmup, (long long)g_steps);
  std::printf("*_bf16 / bf16gemm: cpu-bf16 backend (linear + grouped-linear inputs rounded to bf16, fp32\n"
              "accumulation, conversions included; router, norms, attention, losses, AdamW fp32)\n");
  std::printf("FLOPs/step = tokens·(6·N_active + 6·L·Tseq·D)  [Kaplan; attention term = causal QKᵀ+PV; AdamW not "
              "counted]\n");
  std::printf("N_active: dense %.2fM, moe %.2fM (router + top-2 experts)\n\n", active_matmul_params(dc) / 1e6,
              active_matmul_params(mc) / 1e6);
  std::printf("%-24s %10s %10s %10s %12s\n", "case", "ms/iter", "GFLOP/s", "tokens/s", "peak RSS");
  for (const char* c : {"sgemm_2048x2048x2048", "sgemm_model_ffn", "bf16gemm_2048x2048x2048", "bf16gemm_model_ffn",
                        "train_step_dense", "train_step_moe", "train_step_dense_bf16", "train_step_moe_bf16"}) {
    const auto& r = g_results[c];
    if (r.seconds <= 0) continue;  // filtered out
    std::printf("%-24s %10.1f %10.1f %10.0f %12s\n", c, r.seconds * 1e3, gflops(c), tok_s(c),
                format_bytes(r.peak_rss).c_str());
  }
  // Ratios between this run's cases, where both were run (--benchmark_filter may leave some out).
  auto div = [](double a, double b) { return a > 0 && b > 0 ? a / b : std::nan(""); };
  const double sgemm = gflops("sgemm_2048x2048x2048"), dense = gflops("train_step_dense"),
               moe = gflops("train_step_moe");
  std::printf("\ndense GFLOP/s ÷ sgemm(2048³) GFLOP/s = %.3f  (goal ≥ 0.35)\n", div(dense, sgemm));
  std::printf("moe GFLOP/s ÷ dense GFLOP/s          = %.3f  (goal ≥ 0.80)\n", div(moe, dense));
  std::printf("bf16 GEMM ÷ sgemm (2048³, FFN shape)  = %.2f, %.2f\n", div(gflops("bf16gemm_2048x2048x2048"), sgemm),
              div(gflops("bf16gemm_model_ffn"), gflops("sgemm_model_ffn")));
  const double bf16gemm = gflops("bf16gemm_2048x2048x2048");
  std::printf("bf16 step GFLOP/s ÷ bf16 GEMM GFLOP/s  = dense %.3f, moe %.3f  (goal ≥ 0.75, issue 16)\n",
              div(gflops("train_step_dense_bf16"), bf16gemm), div(gflops("train_step_moe_bf16"), bf16gemm));
  std::printf("bf16 step ÷ fp32 step speed-up        = dense %.2f, moe %.2f\n",
              div(tok_s("train_step_dense_bf16"), tok_s("train_step_dense")),
              div(tok_s("train_step_moe_bf16"), tok_s("train_step_moe")));
  for (const char* m : {"dense", "moe"}) {
    const double l32 = g_results[std::string("train_step_") + m].loss;
    const double l16 = g_results[std::string("train_step_") + m + "_bf16"].loss;
    std::printf("loss at init, %-5s: fp32 %.6f, bf16 %.6f, relative difference %.2e\n", m, l32, l16,
                div(std::fabs(l16 - l32), std::fabs(l32)));
  }
  print_comparison(torch_file.empty() ? TorchResults{} : read_torch(torch_file));
  benchmark::Shutdown();
  return 0;
}
