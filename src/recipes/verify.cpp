// Dense-vs-converted comparison on a probe batch (see verify.h).
#include "recipes/verify.h"

#include <algorithm>
#include <cmath>

#include "backend/backend.h"
#include "backend/host_view.h"
#include "core/rng.h"
#include "io/model_config.h"
#include "model/load_model.h"

namespace upcycle::recipes {
namespace {

struct Deviation {
  double diff = 0, scale = 0;
};

Deviation deviation(const float* a, const float* b, size_t n) {
  Deviation d;
  for (size_t i = 0; i < n; ++i) {
    d.diff = std::max(d.diff, std::fabs(double(a[i]) - double(b[i])));
    d.scale = std::max(d.scale, std::fabs(double(a[i])));
  }
  return d;
}

double relative(const Deviation& d) { return d.scale > 0 ? d.diff / d.scale : d.diff; }

}  // namespace

VerifyReport verify_conversion(const std::filesystem::path& dense_dir, const std::filesystem::path& moe_dir,
                               const VerifyOptions& options) {
  const ModelConfig dense_config = read_model_config(dense_dir);
  const ModelConfig moe_config = read_model_config(moe_dir);
  VerifyReport report;
  report.sequences = options.sequences;
  report.tokens = std::min(options.tokens, std::min(dense_config.max_position_embeddings, moe_config.max_position_embeddings));
  const int64_t B = report.sequences, T = report.tokens, V = dense_config.vocab_size, D = dense_config.hidden_size;
  std::vector<int32_t> ids(size_t(B * T));
  const CounterRng rng(options.seed, "verify.tokens");
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t(rng.bits(i) % uint64_t(V));

  auto backend = backend::make_backend(backend::BackendKind::kCpu);
  auto dense = model::load_transformer(dense_config, dense_dir, *backend);
  auto moe = model::load_transformer(moe_config, moe_dir, *backend);
  const size_t n_logits = size_t(B * T * V), n_hidden = size_t(B * T * D);
  // Readbacks: both models' logits (each model owns its buffers, so both views stay valid).
  const auto dense_logits = backend::host_view(*backend, dense->forward(ids.data(), B, T), n_logits);
  const auto moe_logits = backend::host_view(*backend, moe->forward(ids.data(), B, T), n_logits);
  Deviation logits = deviation(dense_logits.data(), moe_logits.data(), n_logits);
  report.logits_max_abs_diff = logits.diff;
  report.logits_max_abs = logits.scale;
  report.logits_relative = relative(logits);
  if (dense_config.num_hidden_layers == moe_config.num_hidden_layers)
    for (int64_t l = 0; l < dense_config.num_hidden_layers; ++l)
      report.layer_relative.push_back(
          relative(deviation(backend::host_view(*backend, dense->hidden_states(l + 1), n_hidden).data(),
                             backend::host_view(*backend, moe->hidden_states(l + 1), n_hidden).data(), n_hidden)));
  return report;
}

}  // namespace upcycle::recipes
