// Quantiser throughput: MB/s of float32 input that quantize_values (io/ggml_quantize.h) turns into
// each GGUF export type, one thread, on 16 MiB of Gaussian values (σ 0.02, a weight's scale, with a
// few outliers) that stay in cache-sized pieces as the exporter's chunks do. Q8_0 and F16 are the
// cheap baselines measured in the same run. Usage: bench_ggml_quantize [google-benchmark flags].
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "io/ggml_quantize.h"

namespace {

using upcycle::GgmlType;

constexpr size_t kValues = 4u << 20;  // 16 MiB of float32, a multiple of every block size

const std::vector<float>& weights() {
  static const std::vector<float> values = [] {
    std::vector<float> v(kValues);
    std::mt19937 rng(3);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    for (size_t i = 0; i < v.size(); ++i) v[i] = normal(rng) * (i % 211 == 0 ? 10.0f : 1.0f);
    return v;
  }();
  return values;
}

void quantize(benchmark::State& state, GgmlType type) {
  const std::vector<float>& x = weights();
  const upcycle::GgmlTypeInfo& info = upcycle::ggml_type_info(type);
  std::vector<std::byte> out(x.size() / info.block_size * info.block_bytes);
  for (auto _ : state) {
    upcycle::quantize_values(type, x.data(), out.data(), x.size());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * x.size() * sizeof(float)));
}

}  // namespace

BENCHMARK_CAPTURE(quantize, f16, GgmlType::kF16)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(quantize, q8_0, GgmlType::kQ8_0)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(quantize, q4_0, GgmlType::kQ4_0)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(quantize, q5_1, GgmlType::kQ5_1)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(quantize, q2_k, GgmlType::kQ2_K)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(quantize, q3_k, GgmlType::kQ3_K)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(quantize, q4_k, GgmlType::kQ4_K)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(quantize, q5_k, GgmlType::kQ5_K)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(quantize, q6_k, GgmlType::kQ6_K)->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
