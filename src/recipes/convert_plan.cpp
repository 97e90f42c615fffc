// Resolving a ConvertSpec against its sources (see convert_plan.h).
#include "recipes/convert_plan.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "recipes/layer_selection.h"

namespace upcycle::recipes {
namespace {

std::string num(int64_t v) { return std::to_string(v); }

void check_counts(const ConvertSpec& s, const ModelConfig& src, size_t n_sources) {
  if (s.experts < 1) throw Error("--experts must be at least 1");
  if (s.top_k < 1) throw Error("--top-k must be at least 1");
  if (s.top_k > s.experts)
    throw Error("--top-k " + num(s.top_k) + " must not exceed --experts " + num(s.experts));
  if (s.granularity < 1) throw Error("--granularity must be at least 1");
  if (src.intermediate_size % s.granularity != 0)
    throw Error("--granularity " + num(s.granularity) + " must divide the dense intermediate_size " +
                num(src.intermediate_size) + " (experts are F/G wide)");
  if (s.split == ExpertSplit::kContiguous && s.experts % s.granularity != 0 &&
      s.experts + s.shared_experts != s.granularity)
    throw Error("--experts " + num(s.experts) + " must be a multiple of --granularity " + num(s.granularity) +
                " for virtual groups, or --experts + --shared-experts must equal it for a contiguous partition "
                "(or use --expert-split shuffled)");
  if (s.shared_experts < 0) throw Error("--shared-experts must be >= 0");
  if (s.split == ExpertSplit::kCoactivation && s.experts + s.shared_experts != s.granularity)
    throw Error("--expert-split coactivation partitions the FFN into G = " + num(s.granularity) +
                " groups: --experts (" + num(s.experts) + ") + --shared-experts (" + num(s.shared_experts) +
                ") must equal --granularity");
  if (s.drop_ratio < 0 || s.drop_ratio > 1) throw Error("--drop-ratio must be in [0, 1]");
  if (s.noise_std < 0) throw Error("--noise-std must be >= 0");
  if ((s.router_init == RouterInit::kNormal || s.router_init == RouterInit::kUniform) && !(s.router_std > 0))
    throw Error("--router-init standard deviation must be > 0");
  if (s.scaling == ScalingKind::kFactor && !(s.scaling_factor > 0 && std::isfinite(s.scaling_factor)))
    throw Error("--weight-scaling FACTOR must be a positive number");
  if (s.depth_tile < 1) throw Error("--depth-tile must be at least 1");
  auto per_expert = [&](size_t size, const char* what) {
    if (size != 0 && size != size_t(s.experts))
      throw Error(std::string(what) + " lists " + std::to_string(size) + " values for " + num(s.experts) + " experts");
  };
  per_expert(s.expert_source.size(), "expert sources");
  per_expert(s.expert_noise_std.size(), "expert noise_std");
  per_expert(s.expert_residual_scale.size(), "expert residual_scale");
  for (int64_t i : s.expert_source)
    if (i < 0 || size_t(i) >= n_sources) throw Error("expert source index " + num(i) + " is not one of the sources");
  if (s.split == ExpertSplit::kCoactivation && n_sources > 1)
    throw Error("--expert-split coactivation carves the base model's FFN from its own activations; it does not "
                "combine with --expert-sources");
  if (s.shared_source < 0 || size_t(s.shared_source) >= n_sources) throw Error("shared expert source is not one of the sources");
}

Family choose_family(const ConvertSpec& s, const ModelConfig& src, bool all_layers, bool renorm) {
  const std::string src_type(family_model_type(src.family));
  Family f;
  if (s.format == "auto") {
    if (src.family == Family::kQwen3) f = Family::kQwen3Moe;
    else if (src.family == Family::kQwen2) f = Family::kQwen2Moe;
    else f = (all_layers && renorm && s.shared_experts == 0) ? Family::kMixtral : Family::kQwen2Moe;
  } else {
    if (s.format == "deepseek_v3")
      throw Error("--format deepseek_v3 is not supported: its multi-head latent attention (MLA) is no function-"
                  "preserving conversion of a dense model's attention; use --format dots1 (Qwen3 attention + "
                  "DeepSeek-V3 MoE)");
    auto parsed = family_from_model_type(s.format);
    if (!parsed || !family_is_moe(*parsed))
      throw Error("--format must be auto, mixtral, qwen2_moe, qwen3_moe or dots1, not '" + s.format + "'");
    f = *parsed;
  }
  // The qwen family that can take this source: qwen3_moe keeps q/k norms, qwen2_moe has none.
  const std::string qwen_alternative = src.qk_norm ? "qwen3_moe" : "qwen2_moe";
  if (f == Family::kMixtral) {
    if (!all_layers) throw Error("mixtral cannot express MoE in only some layers; use --format " + qwen_alternative);
    if (!renorm)
      throw Error("mixtral always renormalises the top-k probabilities and cannot express --router softmax-topk "
                  "without --norm-topk; use --format " + qwen_alternative);
    if (s.shared_experts > 0) throw Error("mixtral has no shared experts; use --format qwen2_moe");
    if (src.qk_norm) throw Error("mixtral has no q_norm/k_norm, which this " + src_type + " model has; use --format qwen3_moe");
  } else if (f == Family::kDots1) {
    if (!src.qk_norm)
      throw Error("dots1's attention has per-head q_norm/k_norm, which this " + src_type +
                  " model lacks (an RMSNorm is not an identity); convert a qwen3 model, or use --format qwen2_moe");
    if (s.shared_experts < 1)
      throw Error("dots1 always has a shared expert (n_shared_experts >= 1): give --shared-experts S (with "
                  "--shared-expert-scale 0 it starts silent and keeps the dense function)");
  } else if (f == Family::kQwen3Moe) {
    if (s.shared_experts > 0) throw Error("qwen3_moe has no shared experts; use --format qwen2_moe");
    if (!src.qk_norm)
      throw Error("qwen3_moe needs per-head q_norm/k_norm, which this " + src_type +
                  " model lacks (an RMSNorm is not an identity); use --format qwen2_moe or mixtral");
  } else if (src.qk_norm) {
    throw Error("qwen2_moe has no q_norm/k_norm, which this " + src_type + " model has; use --format qwen3_moe");
  }
  return f;
}

// Source weights the output family has no place for: allowed only if every element is zero.
std::vector<std::string> zero_only_weights(const SourceModel& src, const ModelConfig& out) {
  std::vector<std::string> names;
  for (const auto& w : src.table.weights()) {
    const bool qkv = w.role == WeightRole::kQBias || w.role == WeightRole::kKBias || w.role == WeightRole::kVBias;
    if ((qkv && !out.qkv_bias) || (w.role == WeightRole::kOBias && !out.o_bias)) names.push_back(w.name);
  }
  return names;
}

void set_sliding(const ModelConfig& src, ModelConfig& out) {
  out.sliding_window = src.sliding_window;
  // Only qwen2_moe and dots1 have max_window_layers (qwen3_moe windows every layer, mixtral too).
  const bool qwen_source = src.family == Family::kQwen2 || src.family == Family::kQwen3;
  const bool keeps_pattern = (out.family == Family::kQwen2Moe || out.family == Family::kDots1) && qwen_source;
  out.max_window_layers = keeps_pattern ? src.max_window_layers : 0;
  out.window_layers = keeps_pattern ? src.window_layers : std::vector<bool>{};
  // Only qwen2_moe and dots1 keep a per-layer pattern; a qwen3 source (q/k norms) needs dots1.
  for (int64_t l = 0; l < src.num_hidden_layers; ++l)
    if (out.sliding_window_for_layer(l) != src.sliding_window_for_layer(l))
      throw Error(std::string(family_model_type(out.family)) + " cannot express this model's sliding-window layers; " +
                  (src.family == Family::kQwen3 ? "use --format dots1" : "use --format qwen2_moe"));
}

// dots1 keeps its dense layers first (first_k_dense_replace) and routes as DeepSeek-V3 does; the
// converter writes one group (n_group = topk_group = 1) and routed_scaling_factor 1.
void set_dots1_routing(const std::vector<int64_t>& moe_layers, int64_t layers, ModelConfig& c) {
  const int64_t first = moe_layers.front();
  if (int64_t(moe_layers.size()) != layers - first)
    throw Error("dots1 makes layers first_k_dense_replace..L-1 MoE and cannot express this --moe-layers selection; "
                "use --moe-layers all or last:N (or --format qwen3_moe)");
  c.first_k_dense_replace = first;
  c.router_scoring = RouterScoring::kSigmoid;
  c.n_group = 1, c.topk_group = 1;
  c.routed_scaling_factor = 1.0;
}

void classify(const ConvertSpec& s, const std::vector<SourceModel>& sources, ConvertPlan& p) {
  auto no = [&](std::string why) {
    p.preservation = Preservation::kNo;
    p.preservation_reason = std::move(why);
  };
  const bool renorm = s.routing == RoutingOrder::kTopkSoftmax || s.norm_topk;
  const bool reinit = (s.expert_init == ExpertInit::kDrop || s.expert_init == ExpertInit::kNoise) && reinit_any(s);
  if (s.from_scratch == FromScratch::kYes) return no("every weight is re-initialised (--from-scratch)");
  if (p.depth_tiling) return no("depth tiling adds layers");
  if (s.expert_init == ExpertInit::kRandom) return no("experts are random (--expert-init random)");
  if (reinit) return no("experts are perturbed (--expert-init " + std::string(expert_init_name(s.expert_init)) + ")");
  for (int64_t e : p.expert_source)
    if (e != 0) return no("experts come from other sources");
  if (s.non_ffn == NonFfn::kAverage && sources.size() > 1) return no("non-FFN weights are averaged over sources");
  for (double v : s.expert_noise_std)
    if (v != 0) return no("experts get noise");
  for (double v : s.expert_residual_scale)
    if (v != 1) return no("experts have a residual_scale");
  if (s.shared_experts > 0 && s.shared_residual_scale != 0)
    return no("shared experts add to the routed output (--shared-expert-scale 0 silences them)");
  if (s.scaling_mode == ScalingMode::kCubeRoot && p.scale != 1)
    return no("cube-root weight scaling is approximate for SwiGLU (silu is not homogeneous)");
  const int64_t G = s.granularity, E = s.experts, K = s.top_k;
  // Co-activation clusters partition the FFN (E = G): exact when every expert is selected with equal weight.
  const bool all_clusters = s.split == ExpertSplit::kCoactivation && K == E && s.router_init == RouterInit::kZeros;
  const bool groups_whole = G == 1 || all_clusters ||
                            (p.virtual_groups && K % G == 0 && s.router_init != RouterInit::kGiven);
  if (!groups_whole) return no("top-k does not select whole virtual groups");
  if (renorm) {
    if (std::abs(p.scale - double(G)) > 1e-12) return no("weight scaling differs from s = G for renormalised routing");
  } else {
    if (p.config.router_scoring == RouterScoring::kSigmoid)
      return no("sigmoid scores without renormalisation (--norm-topk) do not sum to one");
    if (s.router_init != RouterInit::kZeros)
      return no("softmax-topk without renormalisation weighs experts by p ≈ 1/E, exact only with --router-init zeros");
    if (std::abs(p.scale - double(E * G) / double(K)) > 1e-9 * p.scale)
      return no("weight scaling differs from s = E·G/K for softmax-topk");
  }
  const DType src_dtype = sources[0].config.dtype;
  const bool pow2 = std::exp2(std::round(std::log2(p.scale))) == p.scale;
  const bool exact_values = p.config.dtype == DType::kF32 || (p.config.dtype == src_dtype && pow2);
  p.preservation = exact_values ? Preservation::kExact : Preservation::kRounding;
  p.preservation_reason = exact_values ? "copies with exact routing weights" : "exact up to rounding scaled weights to " +
                                                                                   std::string(dtype_name(p.config.dtype));
}

}  // namespace

bool reinit_any(const ConvertSpec& s) {
  if (s.expert_init == ExpertInit::kNoise) return s.drop_ratio > 0 && s.noise_std > 0;
  return s.drop_ratio > 0;
}

int64_t source_layer(const ConvertPlan& plan, const ConvertSpec& spec, int64_t layer, int64_t L) {
  if (!plan.depth_tiling) return layer;
  return spec.depth_order == DepthOrder::kTiled ? layer % L : layer / spec.depth_tile;
}

void precheck_plan(const ConvertSpec& s, const ModelConfig& src) {
  if (s.depth_tile > 1) return;
  check_counts(s, src, s.sources.size());
  const std::vector<int64_t> moe_layers = select_moe_layers(s.moe_layers, src.num_hidden_layers);
  const bool all_layers = int64_t(moe_layers.size()) == src.num_hidden_layers;
  choose_family(s, src, all_layers, s.routing == RoutingOrder::kTopkSoftmax || s.norm_topk);
}

ConvertPlan make_plan(const ConvertSpec& s, const std::vector<SourceModel>& sources) {
  const ModelConfig& src = sources[0].config;
  ConvertPlan p;
  p.config = src;
  if (s.dtype) p.config.dtype = *s.dtype;
  p.recipe = spec_to_json(s);
  if (s.depth_tile > 1) {
    if (sources.size() > 1) throw Error("--depth-tile takes a single source");
    p.depth_tiling = true;
    p.config.num_hidden_layers = src.num_hidden_layers * s.depth_tile;
    if (src.sliding_window && (src.max_window_layers > 0 || !src.window_layers.empty()))
      throw Error("--depth-tile cannot keep a per-layer sliding-window pattern (max_window_layers or layer_types)",
                  (sources[0].dir / "config.json").string());
    classify(s, sources, p);
    p.config.raw["upcycle_recipe"] = p.recipe;
    validate_model_config(p.config, "converted config");
    return p;
  }
  check_counts(s, src, sources.size());
  p.moe_layers = select_moe_layers(s.moe_layers, src.num_hidden_layers);
  const bool all_layers = int64_t(p.moe_layers.size()) == src.num_hidden_layers;
  const bool renorm = s.routing == RoutingOrder::kTopkSoftmax || s.norm_topk;
  if (s.router_init == RouterInit::kGiven) {
    if (s.router_rows.size() != p.moe_layers.size())
      throw Error("given router rows cover " + std::to_string(s.router_rows.size()) + " layers, but " +
                  std::to_string(p.moe_layers.size()) + " layers are MoE");
    for (const auto& rows : s.router_rows)
      if (int64_t(rows.size()) != s.experts * src.hidden_size) throw Error("given router rows must be experts × hidden_size");
  }
  if (s.split == ExpertSplit::kCoactivation) {
    const int64_t Fp = src.intermediate_size / s.granularity;
    if (s.neuron_groups.size() != p.moe_layers.size())
      throw Error("--expert-split coactivation needs --calibration FILE.txt (neuron groups cover " +
                  std::to_string(s.neuron_groups.size()) + " of " + std::to_string(p.moe_layers.size()) + " MoE layers)");
    for (const auto& g : s.neuron_groups) {
      UPCYCLE_CHECK(int64_t(g.shared.size()) == s.shared_experts * Fp && int64_t(g.experts.size()) == s.experts,
                    "neuron groups do not match the shared width and expert count");
      for (const auto& e : g.experts) UPCYCLE_CHECK(int64_t(e.size()) == Fp, "neuron group width differs from F/G");
    }
  }
  if (s.shared_gate == SharedGate::kGiven) {
    if (s.shared_gate_rows.size() != p.moe_layers.size())
      throw Error("given shared-expert gate rows cover " + std::to_string(s.shared_gate_rows.size()) + " layers, but " +
                  std::to_string(p.moe_layers.size()) + " layers are MoE");
    for (const auto& row : s.shared_gate_rows)
      if (int64_t(row.size()) != src.hidden_size) throw Error("given shared-expert gate rows must be hidden_size long");
  }
  const Family family = choose_family(s, src, all_layers, renorm);
  ModelConfig& c = p.config;
  c.family = family;
  p.expert_width = src.intermediate_size / s.granularity;
  p.shared_width = s.shared_experts * p.expert_width;
  c.num_experts = s.experts;
  c.num_experts_per_tok = s.top_k;
  c.moe_intermediate_size = p.expert_width;
  if (family == Family::kMixtral) c.intermediate_size = p.expert_width;  // HF: the expert width
  const bool shared = family == Family::kQwen2Moe || family == Family::kDots1;
  c.shared_expert_intermediate_size = shared ? p.shared_width : 0;
  c.decoder_sparse_step = 1;
  c.mlp_only_layers.clear();
  if (family == Family::kDots1) {
    set_dots1_routing(p.moe_layers, src.num_hidden_layers, c);
  } else if (!all_layers) {
    for (int64_t l = 0; l < src.num_hidden_layers; ++l)
      if (!std::binary_search(p.moe_layers.begin(), p.moe_layers.end(), l)) c.mlp_only_layers.push_back(l);
  }
  c.topk_norm = renorm ? TopkNorm::kRenormalize : TopkNorm::kNone;
  c.router_aux_loss_coef = s.aux_loss_coef.value_or(default_model_config(family).router_aux_loss_coef);
  if (family == Family::kDots1 && c.router_aux_loss_coef != 0)
    throw Error("dots1 has no aux-loss coefficient (it balances with e_score_correction_bias); drop --aux-loss-coef");
  c.router_jitter_noise = 0;
  // Attention biases: qwen2_moe always carries q/k/v biases (zeros are synthesised, as mergekit does);
  // mixtral has none; o_proj bias exists only in the llama-style attention_bias families.
  if (family == Family::kQwen2Moe) c.qkv_bias = true, c.o_bias = false;
  if (family == Family::kMixtral) c.qkv_bias = false, c.o_bias = false;
  set_sliding(src, c);
  p.zero_only = zero_only_weights(sources[0], c);
  p.virtual_groups = s.granularity > 1 && s.split == ExpertSplit::kContiguous && s.experts % s.granularity == 0;
  if (p.virtual_groups && s.top_k % s.granularity != 0)
    p.warnings.push_back("--top-k " + num(s.top_k) + " is not a multiple of --granularity " + num(s.granularity) +
                         ": top-k splits virtual groups, so the dense function is not preserved");
  p.scale = resolve_scale(s);
  p.scales = matrix_scales(p.scale, s.scaling_mode);
  p.expert_source = s.expert_source.empty() ? std::vector<int64_t>(size_t(s.experts), 0) : s.expert_source;
  classify(s, sources, p);
  c.raw["upcycle_recipe"] = p.recipe;
  validate_model_config(c, "converted config");
  return p;
}

}  // namespace upcycle::recipes
