// Calibration-driven carving (see carving.h).
#include "recipes/carving.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "backend/backend.h"
#include "backend/host_view.h"
#include "core/error.h"
#include "io/model_config.h"
#include "model/load_model.h"
#include "recipes/router_kmeans.h"

namespace upcycle::recipes {

int64_t active_per_token(int64_t F, double fraction) {
  return std::clamp<int64_t>(int64_t(std::ceil(fraction * double(F))), 1, F);
}

std::vector<LayerCarving> carve_layers(model::Transformer& base, std::span<const int32_t> tokens,
                                       std::span<const int64_t> layers, const CarveOptions& o) {
  const ModelConfig& config = base.config();
  const int64_t N = int64_t(tokens.size()), F = config.intermediate_size, D = config.hidden_size;
  UPCYCLE_CHECK(!config.is_moe(), "carving runs the dense base model");
  std::vector<ActivationProfile> profiles(layers.size(), ActivationProfile(F, active_per_token(F, o.active_fraction)));
  for (int64_t start = 0; start < N; start += kCalibrationSeqLen) {
    const int64_t T = std::min(kCalibrationSeqLen, N - start);
    base.forward(tokens.data() + start, 1, T);
    for (size_t i = 0; i < layers.size(); ++i)  // the readback of each layer's SwiGLU activations
      profiles[i].add(backend::host_view(base.backend(), base.ffn_activations(layers[i]), size_t(T * F)).data(), T);
  }
  std::vector<LayerCarving> out(layers.size());
  for (size_t i = 0; i < layers.size(); ++i) {
    out[i].neurons = carve_neurons(profiles[i], o.shared_width, o.clusters, o.cluster_width);
    if (!(o.row_norm > 0)) continue;
    const auto gate_FD = backend::host_view(
        base.backend(), base.params().at("model.layers." + std::to_string(layers[i]) + ".mlp.gate_proj.weight"),
        size_t(F * D));
    out[i].router_ED.assign(size_t(o.clusters * D), 0.0f);
    for (int64_t e = 0; e < o.clusters; ++e) {
      const float* w = gate_FD.data() + out[i].neurons.representatives[size_t(e)] * D;
      double n2 = 0;
      for (int64_t d = 0; d < D; ++d) n2 += double(w[d]) * w[d];
      if (n2 == 0) continue;  // a dead neuron: a zero row (logit 0)
      const double scale = o.row_norm / std::sqrt(n2);
      for (int64_t d = 0; d < D; ++d) out[i].router_ED[size_t(e * D + d)] = float(w[d] * scale);
    }
  }
  return out;
}

std::vector<LayerCarving> carve_layers_from_files(const std::filesystem::path& base,
                                                  const std::filesystem::path& calibration, int64_t max_tokens,
                                                  std::span<const int64_t> layers, const CarveOptions& options) {
  const std::vector<int32_t> ids = calibration_token_ids(base, calibration, max_tokens, 1, "1 token carving needs");
  const ModelConfig config = read_model_config(base);
  std::unique_ptr<backend::Backend> be = backend::make_backend(backend::BackendKind::kCpu);
  std::unique_ptr<model::Transformer> model = model::load_transformer(config, base, *be);
  return carve_layers(*model, ids, layers, options);
}

}  // namespace upcycle::recipes
