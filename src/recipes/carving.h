// Training-free carving of each dense FFN into a shared expert and balanced routed experts from
// activation statistics on calibration text (CMoE: Pei et al. 2025, arXiv 2502.04416), and the
// analytic router that goes with it. The neuron maths is in coactivation.h; this file runs the dense
// model over the calibration tokens (sequences of kCalibrationSeqLen, fp32, cpu), profiles every
// selected layer's SwiGLU intermediate h, and builds per layer:
//   groups:  shared = the S·F' most active neurons, expert e = balanced co-activation cluster e;
//   router:  row e = row_norm · W_gate[r_e] / ‖W_gate[r_e]‖ for the representative neuron r_e of expert e.
//            CMoE scores expert e by |silu(ŵ_gate,r·x̂)·(ŵ_up,r·x̂)|, a quadratic form no HF router can
//            hold (their logits are linear in x); |h_r| is large almost only when the gate
//            pre-activation is large and positive (silu(g) ≥ −0.28), so the linear router keeps the
//            gate factor. With top-k renormalised over near-equal logits each selected expert weighs
//            ≈ 1/K, which weight scaling s = K turns into CMoE's ≈ 1 (convert_plan / weight_scaling).
// Deterministic for the calibration tokens and the thread count (the engine's forward is bitwise per
// thread count; the clustering is serial).
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

#include "model/transformer.h"
#include "recipes/coactivation.h"

namespace upcycle::recipes {

struct CarveOptions {
  int64_t shared_width = 0;      // S·F'
  int64_t clusters = 1;          // routed experts E
  int64_t cluster_width = 1;     // F'
  double active_fraction = 0.1;  // K_a = ⌈fraction·F⌉ neurons marked active per token (CMoE's code: 10%)
  double row_norm = 0;           // router row norm; 0: no router rows
};

struct LayerCarving {
  NeuronCarving neurons;
  std::vector<float> router_ED;  // empty when row_norm = 0
};

int64_t active_per_token(int64_t F, double fraction);  // max(1, ⌈fraction·F⌉), at most F

// One LayerCarving per entry of `layers` (dense layers of `base`), from token ids in the vocabulary.
std::vector<LayerCarving> carve_layers(model::Transformer& base, std::span<const int32_t> tokens,
                                       std::span<const int64_t> layers, const CarveOptions& options);

// The same from files (calibration_token_ids in router_kmeans.h: BOS + text, first max_tokens).
std::vector<LayerCarving> carve_layers_from_files(const std::filesystem::path& base,
                                                  const std::filesystem::path& calibration, int64_t max_tokens,
                                                  std::span<const int64_t> layers, const CarveOptions& options);

}  // namespace upcycle::recipes
