// Cost of the Dirichlet-prior shaping loss (model/dirichlet_prior.h) against the MoE layer it
// regularises, in one process: the `base` preset's expert shape (D=512, F=1408) with E experts top-2,
// T tokens per micro-batch (4 × 512 as in bench/train_step_bench.cpp), cpu backend, fp32.
//   layer  MoeLayer::forward + backward without the prior
//   dpsl   the same with --dirichlet-prior 0.75 --dirichlet-coef 0.1 (loss, sort, Beta CDF and density
//          per token and expert, its gradient into the router)
//   loss   the cpu backend's dirichlet_prior_loss op alone (with its gradient) on the layer's T×E probabilities
// Runs alternate (layer, dpsl, loss, layer, …) after one warm-up each so machine load affects them
// alike; prints the medians. On a shared, loaded machine the layer-vs-dpsl difference drowns in noise;
// loss ÷ layer is the robust figure (the loss is all the prior adds, besides one T·E axpy).
// Usage: bench_dirichlet_prior [--tokens=2048] [--experts=8] [--reps=7]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "backend/backend.h"
#include "model/dirichlet_prior.h"
#include "model/moe_layer.h"
#include "support/moe_test_support.h"

namespace {

using namespace upcycle;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int64_t flag(int argc, char** argv, const char* name, int64_t fallback) {
  const size_t n = std::strlen(name);
  for (int i = 1; i < argc; ++i)
    if (std::strncmp(argv[i], name, n) == 0 && argv[i][n] == '=') return std::atoll(argv[i] + n + 1);
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t T = flag(argc, argv, "--tokens", 2048), E = flag(argc, argv, "--experts", 8);
  const int64_t reps = flag(argc, argv, "--reps", 7), D = 512, F = 1408;
  auto be = backend::make_backend(backend::BackendKind::kCpu);
  test::MoeBuffers w(E, D, F, 0, false), g(E, D, F, 0, false);
  w.randomize(1, 1.0f);
  const std::vector<float> x = test::random_floats(size_t(T * D), 2, 1.0f, "x");
  const std::vector<float> dy = test::random_floats(size_t(T * D), 3, 1.0f, "dy");
  std::vector<float> y(size_t(T * D)), dx(size_t(T * D));
  model::MoeOptions plain{.num_experts = E, .top_k = 2};
  model::MoeOptions shaped = plain;
  shaped.dirichlet_alpha_E.assign(size_t(E), 0.75);
  shaped.dirichlet_coef = 0.1;
  const model::MoeDims dims{.hidden = D, .expert_width = F};
  model::MoeLayer layer_plain(*be, plain, dims), layer_shaped(*be, shaped, dims);
  auto step = [&](model::MoeLayer& layer) {
    const auto t0 = std::chrono::steady_clock::now();
    model::MoeGrads grads = g.grads();
    layer.forward(y.data(), x.data(), T, w.weights(), model::Phase::kTraining, 0);
    layer.backward(dx.data(), grads, dy.data(), x.data(), w.weights());
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  // Probabilities of the kind the router makes: softmax rows of the router logits.
  std::vector<double> probs_TE(size_t(T * E)), dprobs_TE(probs_TE.size());
  for (int64_t t = 0; t < T; ++t) {
    double sum = 0;
    for (int64_t e = 0; e < E; ++e) {
      double l = 0;
      for (int64_t d = 0; d < D; ++d) l += double(x[size_t(t * D + d)]) * w.router[size_t(e * D + d)];
      sum += probs_TE[size_t(t * E + e)] = std::exp(l);
    }
    for (int64_t e = 0; e < E; ++e) probs_TE[size_t(t * E + e)] /= sum;
  }
  const std::vector<float> probs_f(probs_TE.begin(), probs_TE.end());
  double loss = 0;
  auto loss_only = [&] {
    const auto t0 = std::chrono::steady_clock::now();
    be->dirichlet_prior_loss(&loss, dprobs_TE.data(), probs_f.data(), T, E, nullptr, nullptr, 0,
                             shaped.dirichlet_alpha_E.data(), 1);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  step(layer_plain);
  step(layer_shaped);
  loss_only();
  std::vector<double> plain_s, shaped_s, loss_s;
  for (int64_t r = 0; r < reps; ++r) {
    plain_s.push_back(step(layer_plain));
    shaped_s.push_back(step(layer_shaped));
    loss_s.push_back(loss_only());
  }
  const double a = median(plain_s), b = median(shaped_s), c = median(loss_s);
  std::printf("MoE layer forward+backward, T=%lld D=%lld F=%lld E=%lld top-2: %.1f ms; with the Dirichlet prior "
              "%.1f ms; the loss and its gradient alone %.2f ms = %.2f %% of the layer\n",
              static_cast<long long>(T), static_cast<long long>(D), static_cast<long long>(F),
              static_cast<long long>(E), a * 1e3, b * 1e3, c * 1e3, c / a * 100);
  return 0;
}
