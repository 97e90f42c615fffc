// `upcycle convert DENSE_DIR OUT_DIR [flags]`: turn a dense HF checkpoint (or several, BTX-style)
// into an MoE checkpoint, or a deeper dense one (--depth-tile). This file only parses flags into a
// recipes::ConvertSpec (presets first, explicit flags override them), runs recipes::convert and,
// with --verify, compares the two models on a probe batch. The recipes and their equations live in
// src/recipes/ and docs/recipes.md.

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>

#include "cli/commands.h"
#include "cli/command_args.h"
#include "cli/options.h"
#include "cli/runtime_flags.h"
#include "core/error.h"
#include "core/units.h"
#include "io/model_config.h"
#include "recipes/carving.h"
#include "recipes/converter.h"
#include "recipes/layer_selection.h"
#include "recipes/router_from_prompts.h"
#include "recipes/router_kmeans.h"
#include "recipes/mergekit_config.h"
#include "recipes/mergekit_spec.h"
#include "recipes/presets.h"
#include "recipes/verify.h"

namespace upcycle::cli {
namespace {

using namespace upcycle::recipes;

struct ConvertOptions {
  std::string dense, out;
  std::string recipe;
  std::string prompts;
  std::string calibration;
  int64_t calibration_tokens = 4096;
  double active_fraction = 0.1;
  std::string preset;
  std::string moe_layers = "all";
  int64_t experts = 8, top_k = 2, granularity = 1, shared_experts = 0;
  std::string shared_expert_gate = "sigmoid";
  double shared_expert_scale = 1.0;
  std::string expert_init = "copy";
  double drop_ratio = 0.5;
  std::string drop_scope = "neuron", drop_stats = "matrix";
  double noise_std = 0.02;
  std::string expert_split = "contiguous";
  std::string weight_scaling = "auto", weight_scaling_mode = "down";
  std::string router_init = "normal:0.02";
  std::string router = "topk-softmax";
  bool norm_topk = false;
  std::string aux_loss_coef = "family";
  std::string format = "auto", dtype = "source";
  uint64_t seed = 0;
  std::string rng_version = "2";
  std::string expert_sources;
  bool average_non_ffn = false;
  int64_t depth_tile = 1;
  std::string depth_order = "tiled";
  bool from_scratch = false;
  std::string expert_layout = "per-expert";
  std::string max_shard_size = "5GB";
  bool verify = false;
  int64_t verify_tokens = 32;
  int64_t threads = 0;
  bool force = false;
};

RngVersion rng_version_from_choice(const std::string& choice) { return choice == "1" ? RngVersion::kV1 : RngVersion::kV2; }

double parse_number(const std::string& text, const std::string& flag) {
  try {
    size_t used = 0;
    double v = std::stod(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  throw Error(flag + ": '" + text + "' is not a number");
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); ++i)
    if (i == text.size() || text[i] == ',') {
      if (i > start) out.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  return out;
}

// `--router-init hidden|hidden-avg|cheap-embed`: mergekit's prompt gate modes, rows from --prompts.
std::optional<GateMode> prompt_gate_mode(const std::string& text) {
  if (text == "hidden") return GateMode::kHidden;
  if (text == "hidden-avg") return GateMode::kHiddenAvg;
  if (text == "cheap-embed") return GateMode::kCheapEmbed;
  return std::nullopt;
}

// `--router-init kmeans[:STD]`: LLaMA-MoE v2's k-means centroids of --calibration text.
bool is_kmeans_init(const std::string& text) { return text.substr(0, text.find(':')) == "kmeans"; }
// `--router-init cmoe[:STD]`: rows from the representative neurons of --expert-split coactivation.
bool is_cmoe_init(const std::string& text) { return text.substr(0, text.find(':')) == "cmoe"; }

void parse_router_init(const std::string& text, ConvertSpec& s) {
  if (prompt_gate_mode(text)) {
    s.router_init = RouterInit::kGiven;  // rows filled by add_prompt_router_rows
    return;
  }
  auto colon = text.find(':');
  const std::string kind = text.substr(0, colon);
  if (kind == "zeros" && colon == std::string::npos) {
    s.router_init = RouterInit::kZeros;
    return;
  }
  if (kind != "normal" && kind != "uniform" && kind != "kmeans" && kind != "cmoe")
    throw Error(
        "--router-init must be normal[:STD], uniform[:STD], zeros, hidden, hidden-avg, cheap-embed, kmeans[:STD] or "
        "cmoe[:STD], not '" + text + "'");
  s.router_init = kind == "normal" ? RouterInit::kNormal : kind == "uniform" ? RouterInit::kUniform : RouterInit::kGiven;
  if (colon != std::string::npos) s.router_std = parse_number(text.substr(colon + 1), "--router-init");
}

// DENSE_DIR is source 0; --expert-sources adds the others (a directory listed twice is one source).
void set_sources(const ConvertOptions& o, ConvertSpec& s) {
  s.sources = {o.dense};
  if (o.expert_sources.empty()) return;
  auto dirs = split_list(o.expert_sources);
  std::vector<int64_t> index;
  for (const auto& d : dirs) {
    int64_t found = -1;
    for (size_t i = 0; i < s.sources.size(); ++i) {
      std::error_code ec;
      if (std::filesystem::equivalent(s.sources[i], d, ec)) found = int64_t(i);
    }
    if (found < 0) {
      found = int64_t(s.sources.size());
      s.sources.push_back(d);
    }
    index.push_back(found);
  }
  const int64_t S = int64_t(dirs.size());
  if (S > o.experts) throw Error("--expert-sources lists " + std::to_string(S) + " sources for " + std::to_string(o.experts) + " experts");
  for (int64_t e = 0; e < o.experts; ++e) s.expert_source.push_back(index[size_t(e * S / o.experts)]);
}

ConvertSpec make_spec(const ConvertOptions& o) {
  ConvertSpec s;
  set_sources(o, s);
  s.preset = o.preset;
  s.moe_layers = o.moe_layers;
  s.experts = o.experts, s.top_k = o.top_k, s.granularity = o.granularity, s.shared_experts = o.shared_experts;
  s.shared_gate = o.shared_expert_gate == "sigmoid" ? SharedGate::kSigmoid : SharedGate::kUngated;
  s.shared_residual_scale = o.shared_expert_scale;
  s.expert_init = o.expert_init == "copy"    ? ExpertInit::kCopy
                  : o.expert_init == "noise" ? ExpertInit::kNoise
                  : o.expert_init == "drop"  ? ExpertInit::kDrop
                                             : ExpertInit::kRandom;
  s.drop_ratio = o.drop_ratio;
  s.drop_scope = o.drop_scope == "neuron" ? DropScope::kNeuron : DropScope::kMatrix;
  s.drop_stats = o.drop_stats == "matrix" ? DropStats::kMatrix : DropStats::kSlice;
  s.noise_std = o.noise_std;
  s.split = o.expert_split == "contiguous" ? ExpertSplit::kContiguous
            : o.expert_split == "shuffled" ? ExpertSplit::kShuffled
                                           : ExpertSplit::kCoactivation;
  if (o.weight_scaling == "auto") s.scaling = ScalingKind::kAuto;
  else if (o.weight_scaling == "none") s.scaling = ScalingKind::kNone;
  else s.scaling = ScalingKind::kFactor, s.scaling_factor = parse_number(o.weight_scaling, "--weight-scaling");
  s.scaling_mode = o.weight_scaling_mode == "down" ? ScalingMode::kDown : ScalingMode::kCubeRoot;
  parse_router_init(o.router_init, s);
  s.routing = o.router == "topk-softmax" ? RoutingOrder::kTopkSoftmax : RoutingOrder::kSoftmaxTopk;
  s.norm_topk = o.norm_topk;
  if (o.aux_loss_coef != "family") s.aux_loss_coef = parse_number(o.aux_loss_coef, "--aux-loss-coef");
  s.format = o.format;
  if (o.dtype != "source") s.dtype = dtype_from_choice(o.dtype);
  s.seed = o.seed;
  s.rng_version = rng_version_from_choice(o.rng_version);
  s.non_ffn = o.average_non_ffn ? NonFfn::kAverage : NonFfn::kBase;
  s.depth_tile = o.depth_tile;
  s.depth_order = o.depth_order == "tiled" ? DepthOrder::kTiled : DepthOrder::kStacked;
  s.from_scratch = o.from_scratch ? FromScratch::kYes : FromScratch::kNo;
  return s;
}

void check_depth_tile(const OptionSet& set, const ConvertOptions& o) {
  if (o.depth_tile <= 1) return;
  for (const char* flag : {"preset", "moe-layers", "experts", "top-k", "granularity", "shared-experts", "expert-init",
                           "expert-sources", "router-init", "router", "weight-scaling", "format", "from-scratch",
                           "expert-layout"})
    if (set.given(flag))
      throw Error(std::string("--depth-tile writes a deeper dense model; --") + flag + " does not apply to it");
}

// k-means router rows for the MoE layers: row norm std·√D, the expected norm of a N(0, std²) row.
void add_kmeans_router_rows(const ConvertOptions& o, ConvertSpec& spec) {
  if (!is_kmeans_init(o.router_init)) {
    if (!o.calibration.empty() && o.expert_split != "coactivation")
      throw Error("--calibration needs --router-init kmeans or --expert-split coactivation");
    return;
  }
  if (o.calibration.empty()) throw Error("--router-init kmeans needs --calibration FILE.txt (text to cluster)");
  if (!(spec.router_std > 0)) throw Error("--router-init kmeans:STD needs STD > 0");
  const ModelConfig dense = read_model_config(spec.sources.at(0));
  const std::vector<int64_t> layers = select_moe_layers(spec.moe_layers, dense.num_hidden_layers);
  const double row_norm = spec.router_std * std::sqrt(double(dense.hidden_size));
  spec.router_rows = kmeans_router_rows_from_files(spec.sources.at(0), o.calibration, o.calibration_tokens,
                                                   spec.experts, layers, spec.seed, row_norm);
}

// --expert-split coactivation: carve every MoE layer's FFN on --calibration text (shared = most active
// neurons, routed = balanced co-activation clusters) and, with --router-init cmoe, take the router rows
// from the clusters' representative neurons (norm STD·√D). Impossible sizes are left to make_plan's errors.
void add_carved_groups(const ConvertOptions& o, ConvertSpec& spec) {
  const bool cmoe_router = is_cmoe_init(o.router_init);
  if (spec.split != ExpertSplit::kCoactivation) {
    if (cmoe_router)
      throw Error("--router-init cmoe needs --expert-split coactivation (its rows come from the clusters' neurons)");
    return;
  }
  if (o.calibration.empty())
    throw Error("--expert-split coactivation needs --calibration FILE.txt (text whose neuron activations are clustered)");
  if (!(o.active_fraction > 0 && o.active_fraction <= 1)) throw Error("--active-fraction must be in (0, 1]");
  if (cmoe_router && !(spec.router_std > 0)) throw Error("--router-init cmoe:STD needs STD > 0");
  const ModelConfig dense = read_model_config(spec.sources.at(0));
  const int64_t F = dense.intermediate_size, G = spec.granularity, E = spec.experts, S = spec.shared_experts;
  if (G < 1 || E < 1 || S < 0 || F % G != 0 || E + S != G || dense.is_moe() || spec.sources.size() > 1) return;
  const std::vector<int64_t> layers = select_moe_layers(spec.moe_layers, dense.num_hidden_layers);
  CarveOptions co{S * (F / G), E, F / G, o.active_fraction,
                  cmoe_router ? spec.router_std * std::sqrt(double(dense.hidden_size)) : 0.0};
  std::vector<LayerCarving> carved =
      carve_layers_from_files(spec.sources.at(0), o.calibration, o.calibration_tokens, layers, co);
  spec.neuron_groups.clear();
  if (cmoe_router) spec.router_rows.clear();
  for (auto& c : carved) {
    spec.neuron_groups.push_back({c.neurons.shared, c.neurons.clusters});
    if (cmoe_router) spec.router_rows.push_back(std::move(c.router_ED));
  }
}

// Prompt-based router rows for the MoE layers of a flag-driven conversion (one prompt set per expert).
void add_prompt_router_rows(const ConvertOptions& o, ConvertSpec& spec) {
  const auto mode = prompt_gate_mode(o.router_init);
  if (!mode) {
    if (!o.prompts.empty()) throw Error("--prompts needs --router-init hidden, hidden-avg or cheap-embed");
    return;
  }
  if (o.prompts.empty())
    throw Error("--router-init " + o.router_init + " needs --prompts FILE.yaml (experts: [{positive_prompts: [...]}, ...])");
  std::vector<std::string> warnings;
  const std::vector<PromptTexts> experts = read_expert_prompts_yaml(o.prompts, warnings);
  for (const auto& w : warnings) std::fprintf(stderr, "upcycle: warning: %s\n", w.c_str());
  if (int64_t(experts.size()) != spec.experts)
    throw Error("--prompts lists " + std::to_string(experts.size()) + " experts, but --experts is " +
                    std::to_string(spec.experts),
                o.prompts);
  auto rows = router_rows_for_experts(spec.sources.at(0), *mode, experts, spec.seed, o.prompts);
  const int64_t L = int64_t(rows.size()), D = int64_t(rows.at(0).size()) / spec.experts;
  spec.router_rows.clear();
  for (int64_t l : select_moe_layers(spec.moe_layers, L)) spec.router_rows.push_back(std::move(rows[size_t(l)]));
  if (auto w = degenerate_gate_warning(spec.router_rows, spec.experts, D))
    std::fprintf(stderr, "upcycle: warning: %s\n", w->c_str());
}

// With --recipe the YAML is the recipe: flags that would compete with it are refused, not merged.
void check_recipe_flags(const OptionSet& set) {
  for (const char* flag : {"preset", "moe-layers", "experts", "top-k", "granularity", "shared-experts",
                           "shared-expert-gate", "shared-expert-scale", "expert-init", "drop-ratio", "drop-scope", "drop-stats", "noise-std",
                           "expert-split", "weight-scaling", "weight-scaling-mode", "router-init", "router", "norm-topk",
                           "format", "expert-sources", "depth-tile", "depth-order", "from-scratch", "prompts",
                           "calibration", "calibration-tokens", "active-fraction"})
    if (set.given(flag))
      throw Error(std::string("--") + flag + " does not combine with --recipe: the mergekit YAML defines the recipe");
}

// `upcycle convert --recipe FILE.yaml OUT_DIR`: the YAML names the base model and every source.
ConvertSpec spec_from_recipe(ConvertOptions& o, const OptionSet& set) {
  check_recipe_flags(set);
  if (!o.out.empty())
    throw Error("with --recipe give only OUT_DIR (the YAML's base_model is the dense model), not '" + o.dense + "' too");
  o.out = o.dense;
  if (o.out.empty()) throw Error("missing OUT_DIR (usage: upcycle convert --recipe FILE.yaml OUT_DIR)");
  const MergekitMoeConfig config = parse_mergekit_moe_yaml(o.recipe);
  for (const auto& w : config.warnings) std::fprintf(stderr, "upcycle: warning: %s\n", w.c_str());
  const MoePlan plan = plan_mergekit_moe(config);
  ConvertSpec spec = convert_spec_from_mergekit(plan);
  if (o.dtype != "source") spec.dtype = dtype_from_choice(o.dtype);
  if (set.given("seed")) spec.seed = o.seed;
  spec.rng_version = rng_version_from_choice(o.rng_version);
  if (o.average_non_ffn) spec.non_ffn = NonFfn::kAverage;
  if (set.given("aux-loss-coef") && o.aux_loss_coef != "family")
    spec.aux_loss_coef = parse_number(o.aux_loss_coef, "--aux-loss-coef");
  for (const auto& w : add_mergekit_router_rows(spec, plan, o.recipe))
    std::fprintf(stderr, "upcycle: warning: %s\n", w.c_str());
  o.dense = plan.sources.at(0).string();  // --verify compares against the base model
  return spec;
}

std::string_view preservation_text(Preservation p) {
  switch (p) {
    case Preservation::kExact: return "function-preserving (threshold 1e-4)";
    case Preservation::kRounding: return "function-preserving up to weight rounding (threshold 1e-2)";
    case Preservation::kNo: return "not function-preserving";
  }
  return "?";
}

void run_verify(const ConvertOptions& o, const ConvertPlan& plan) {
  VerifyOptions vo;
  vo.tokens = o.verify_tokens;
  vo.seed = o.seed;
  VerifyReport r = verify_conversion(o.dense, o.out, vo);
  std::printf("verify: %lld sequences x %lld tokens; relative deviation = max|converted - dense| / max|dense|\n",
              (long long)r.sequences, (long long)r.tokens);
  if (!r.layer_relative.empty()) std::printf("  %-6s %s\n", "layer", "output deviation");
  for (size_t l = 0; l < r.layer_relative.size(); ++l) std::printf("  %-6zu %.3e\n", l, r.layer_relative[l]);
  std::printf("  %-6s %.3e (max |dlogits| %.3e, max |dense logits| %.3e)\n", "logits", r.logits_relative,
              r.logits_max_abs_diff, r.logits_max_abs);
  std::printf("expected: %s — %s\n", std::string(preservation_text(plan.preservation)).c_str(),
              plan.preservation_reason.c_str());
  if (plan.preservation == Preservation::kNo) return;
  const double threshold = plan.preservation == Preservation::kExact ? 1e-4 : 1e-2;
  char buf[200];
  std::snprintf(buf, sizeof buf, "%.3e", r.logits_relative);
  if (!(r.logits_relative <= threshold))
    throw Error("--verify: relative logit deviation " + std::string(buf) + " exceeds " +
                    (threshold == 1e-4 ? "1e-4" : "1e-2") + " although the recipe preserves the dense function",
                o.out);
  std::printf("verify: ok (%s <= %s)\n", buf, threshold == 1e-4 ? "1e-4" : "1e-2");
}

OptionSet convert_option_set(ConvertOptions& o) {
  OptionSet set("convert", "upcycle convert DENSE_DIR OUT_DIR [--preset NAME] [recipe flags] [--verify]\n       upcycle convert --recipe MERGEKIT.yaml OUT_DIR [--verify]",
                "Turn a dense Hugging Face checkpoint (llama, mistral, qwen2, qwen3) into a Mixture-of-Experts\n"
                "checkpoint (mixtral, qwen2_moe, qwen3_moe, dots1) with one of the known upcycling recipes, or into a\n"
                "deeper dense model (--depth-tile). Embeddings, attention, norms, lm_head, tokenizer and generation\n"
                "files are carried over; the recipe is recorded in config.json (\"upcycle_recipe\") and in the\n"
                "safetensors metadata. Output is streamed (memory does not grow with model size) and atomic.\n"
                "Equations and sources of every recipe: docs/recipes.md.");
  set.add_positional("DENSE_DIR", "dense checkpoint (the base: non-FFN weights, shared expert, dense layers)", &o.dense,
                     Required::kNo);
  set.add_positional("OUT_DIR", "output directory (must not exist unless --force)", &o.out, Required::kNo);
  set.add("recipe", "FILE.yaml",
          "mergekit-moe YAML (base_model, experts[].source_model, prompts, gate_mode, ...), read unchanged; then\n"
          "give only OUT_DIR. Extensions: average_non_ffn (BTX), seed. See docs/recipes.md",
          &o.recipe);
  set.add("preset", "NAME", "recipe preset: " + convert_preset_names() + "; explicit flags override it", &o.preset);
  set.add("moe-layers", "SEL", "all | every:N[:OFFSET] | first:N | last:N | i,j,k (every:2:1 = every other from the 2nd)",
          &o.moe_layers);
  set.add("experts", "E", "routed experts per MoE layer", &o.experts);
  set.add("top-k", "K", "experts per token (K <= E)", &o.top_k);
  set.add("granularity", "G", "fine-grained experts F/G wide; G must divide F (and E for contiguous shards)", &o.granularity);
  set.add("shared-experts", "S", "always-on shared experts (qwen2_moe: one fused expert S*F/G wide, from shards 0..S-1)",
          &o.shared_experts);
  set.add_choice("shared-expert-gate", {"sigmoid", "ungated"},
                 "qwen2_moe's sigmoid gate: learned from N(0, router std^2), or zero weight + down_proj x2 (exactly ungated at init)",
                 &o.shared_expert_gate);
  set.add("shared-expert-scale", "X",
          "shared expert's down_proj x X; 0 = silent at init, so dots1 (and qwen2_moe) keep the dense function\n"
          "with renormalised routing while the shared expert still learns (its down_proj gets gradients)",
          &o.shared_expert_scale);
  set.add_choice("expert-init", {"copy", "noise", "drop", "random"},
                 "copy (Komatsuzaki), noise (RNU: + N(0, noise-std^2) on r*F' neurons), drop (Drop-Upcycling: r*F' neurons "
                 "re-drawn from N(mean, std)), random (from-scratch experts)",
                 &o.expert_init);
  set.add("drop-ratio", "R", "fraction r of each expert's neurons re-drawn (drop) or perturbed (noise)", &o.drop_ratio);
  set.add_choice("drop-scope", {"neuron", "matrix"},
                 "neuron: one set per expert for gate, up and down (paper); matrix: one per matrix (released code)", &o.drop_scope);
  set.add_choice("drop-stats", {"matrix", "slice"}, "mean/std of the whole dense matrix, or of the replaced slice (code)",
                 &o.drop_stats);
  set.add("noise-std", "SIGMA", "noise std for --expert-init noise", &o.noise_std);
  set.add_choice("expert-split", {"contiguous", "shuffled", "coactivation"},
                 "contiguous shards with virtual-group routers (NVIDIA), shuffled copies cut into experts (Qwen2), or\n"
                 "coactivation (CMoE / LLaMA-MoE, needs --calibration): neurons active on the same calibration tokens\n"
                 "form one expert (balanced k-means on activation patterns), the S*F/G most active ones the shared\n"
                 "expert; a partition of the FFN, so E + S = G; weight scaling auto = K (E for softmax-topk)",
                 &o.expert_split);
  set.add("weight-scaling", "auto|none|S", "scale s for function preservation; auto: G (topk-softmax) or E*G/K (softmax-topk)",
          &o.weight_scaling);
  set.add_choice("weight-scaling-mode", {"down", "cube-root"},
                 "down: down_proj x s (exact); cube-root: gate, up, down x s^(1/3) (Megatron, approximate for SwiGLU)",
                 &o.weight_scaling_mode);
  set.add("router-init", "INIT",
          "normal:STD | uniform:STD | zeros (seeded; virtual groups share rows) | hidden | hidden-avg | cheap-embed\n"
          "(mergekit: normalised hidden states / embeddings of each expert's --prompts on the dense model) |\n"
          "kmeans:STD (LLaMA-MoE v2: row e = centroid e of a seeded cosine k-means of each MoE layer's FFN\n"
          "inputs on --calibration text, scaled to norm STD*sqrt(D); calibration tokens route top-1 to their cluster) |\n"
          "cmoe:STD (CMoE, with --expert-split coactivation: row e = gate_proj row of expert e's representative\n"
          "neuron, the one nearest its cluster centre, scaled to norm STD*sqrt(D); no training)",
          &o.router_init);
  set.add("prompts", "FILE.yaml",
          "per-expert prompts for the prompt router inits: experts: [{positive_prompts: [..], negative_prompts: [..]}]",
          &o.prompts);
  set.add("calibration", "FILE.txt",
          "text for --router-init kmeans and --expert-split coactivation, tokenized with DENSE_DIR/tokenizer.json (BOS + text)",
          &o.calibration);
  set.add("calibration-tokens", "N", "use the first N calibration tokens (run in sequences of 512; memory N*D*4 bytes per MoE layer)",
          &o.calibration_tokens);
  set.add("active-fraction", "R",
          "--expert-split coactivation: a neuron is active on a token when its |silu(gate)*up| is among the\n"
          "ceil(R*F) largest of that token (CMoE's code: 0.1); activation rates pick the shared expert",
          &o.active_fraction);
  set.add_choice("router", {"topk-softmax", "softmax-topk"},
                 "routing written to config: renormalised over the top-k (Mixtral), or softmax then top-k (Qwen default)",
                 &o.router);
  set.add_flag("norm-topk", "with softmax-topk: renormalise the top-k probabilities (norm_topk_prob)", &o.norm_topk);
  set.add("aux-loss-coef", "C", "router_aux_loss_coef written to config (family: the family's HF default)", &o.aux_loss_coef);
  set.add_choice("format", {"auto", "mixtral", "qwen2_moe", "qwen3_moe", "dots1", "deepseek_v3"},
                 "output family; auto: mixtral when it can express the recipe, else qwen2_moe (qwen3 -> qwen3_moe).\n"
                 "dots1 (from qwen3: Qwen3 attention + DeepSeek-V3 MoE): sigmoid router scores, e_score_correction_bias\n"
                 "(zeros; train --expert-bias-rate learns it), --shared-experts S >= 1 (n_shared_experts), dense\n"
                 "layers first (--moe-layers last:N or all -> first_k_dense_replace), norm_topk_prob from --router\n"
                 "topk-softmax or --norm-topk. Function-preserving with renormalised routing, weight scaling G and\n"
                 "--shared-expert-scale 0. deepseek_v3 is refused: its MLA attention is not a conversion of the\n"
                 "dense model's attention",
                 &o.format);
  set.add_choice("dtype", {"source", "f32", "bf16", "f16"}, "output dtype", &o.dtype);
  set.add("seed", "S", "random seed (same seed, same bytes, any thread count)", &o.seed);
  set.add_choice("rng-version", {"1", "2"},
                 "normal stream of the expert weights' draws (drop, noise, random experts, mergekit noise_scale):\n"
                 "2 = fp32 Box-Muller with upcycle's own log/sin/cos, vectorised, the same bits on every CPU;\n"
                 "1 = double Box-Muller with the C library's log/sincos (the stream of conversions made before\n"
                 "v2; several times slower). Recorded as upcycle_recipe.rng_version in config.json: pass the\n"
                 "recorded value to reproduce a conversion. Routers and --from-scratch draw v1 either way",
                 &o.rng_version);
  set.add("expert-sources", "DIR,DIR", "dense checkpoints whose FFNs become experts: expert e from source floor(e*S/E)",
          &o.expert_sources);
  set.add_flag("average-non-ffn", "average embeddings, attention and norms over all sources (BTX)", &o.average_non_ffn);
  set.add("depth-tile", "N", "write a dense model with N*L layers instead (dense-upcycling baseline)", &o.depth_tile);
  set.add_choice("depth-order", {"tiled", "stacked"}, "tiled: 0..L-1,0..L-1; stacked: 0,0,1,1,...", &o.depth_order);
  set.add_flag("from-scratch", "re-initialise every weight as 'upcycle init' would (MoE-from-scratch baseline)",
               &o.from_scratch);
  set.add_choice("expert-layout", {"per-expert", "fused"},
                 "per-expert: legacy names every tool loads; fused: transformers-5 stacked gate_up_proj/down_proj",
                 &o.expert_layout);
  set.add("max-shard-size", "SIZE", "largest safetensors shard", &o.max_shard_size);
  set.add_flag("verify", "run dense and converted models on a probe batch and report the deviation", &o.verify);
  set.add("verify-tokens", "N", "tokens per probe sequence (2 sequences)", &o.verify_tokens);
  bind_threads_flag(set, &o.threads, "output does not depend on it, except for router inits that run the model (hidden, hidden-avg, kmeans: bit-identical per thread count)");
  set.add_flag("force", "replace OUT_DIR if it exists", &o.force);
  set.add_epilog(
      "examples:\n"
      "  upcycle convert dense/ moe/ --experts 8 --top-k 2 --verify\n"
      "  upcycle convert dense/ moe/ --preset drop-upcycling --seed 1\n"
      "  upcycle convert dense/ moe/ --experts 16 --granularity 4 --top-k 4 --router-init normal:0.02 --verify\n"
      "  upcycle convert dense/ moe/ --experts 8 --top-k 2 --router-init kmeans --calibration wiki.txt --verify\n"
      "  upcycle convert dense/ carved/ --preset cmoe --calibration wiki.txt   # training-free carving\n"
      "  upcycle convert seed/ btx/ --preset btx --expert-sources seed/,math/,code/,wiki/\n"
      "  upcycle convert dense/ deep/ --depth-tile 2 --depth-order stacked\n"
      "  upcycle convert --recipe clown-car.yaml moe/ --verify\n"
      "function-preserving recipes (checked by --verify): copies with topk-softmax at G = 1; virtual groups with\n"
      "K a multiple of G and s = G (down mode); softmax-topk with --router-init zeros and s = E*G/K (down mode);\n"
      "coactivation with K = E and --router-init zeros.");
  return set;
}

// The preset's flags under the explicit ones, and the checks that need no file.
void apply_preset_and_check(OptionSet& set, ConvertOptions& o) {
  if (!o.preset.empty())
    for (const auto& [flag, value] : find_convert_preset(o.preset).flags)
      if (!set.given(flag)) set.set_default(flag, std::string(value));
  check_depth_tile(set, o);
  if (o.preset == "btx" && o.expert_sources.empty())
    throw Error("the btx preset needs --expert-sources DIR,DIR,... (the dense fine-tunes whose FFNs become experts)");
  if (o.verify_tokens < 1) throw Error("--verify-tokens must be at least 1");
  if (o.calibration_tokens < 1) throw Error("--calibration-tokens must be at least 1");
}

}  // namespace

void check_convert_args(const Args& args) {
  ConvertOptions o;
  OptionSet set = convert_option_set(o);
  if (!set.parse(args)) throw Error("--help is not a conversion option here");
  apply_preset_and_check(set, o);
}

int run_convert(const Args& args) {
  ConvertOptions o;
  OptionSet set = convert_option_set(o);
  if (!set.parse(args)) return 0;
  if (o.recipe.empty() && o.dense.empty()) throw Error("missing DENSE_DIR (the dense checkpoint to convert)");
  if (o.recipe.empty() && o.out.empty()) throw Error("missing OUT_DIR (where the converted checkpoint goes)");
  apply_preset_and_check(set, o);
  apply_threads(o.threads);

  ConvertSpec spec = o.recipe.empty() ? make_spec(o) : spec_from_recipe(o, set);
  if (o.recipe.empty()) {
    precheck_plan(spec, read_model_config(spec.sources.at(0)));  // before any calibration forward pass
    add_prompt_router_rows(o, spec);
    add_kmeans_router_rows(o, spec);
    add_carved_groups(o, spec);
  }
  ConvertOutput output{o.out, o.force ? Overwrite::kReplace : Overwrite::kRefuse,
                       parse_byte_size(o.max_shard_size, "--max-shard-size"), ShowProgress::kYes,
                       o.expert_layout == "fused" ? ExpertLayout::kFused : ExpertLayout::kPerExpert};
  ConvertResult r = convert(spec, output);
  const ModelConfig& c = r.plan.config;
  for (const auto& w : r.plan.warnings) std::fprintf(stderr, "upcycle: warning: %s\n", w.c_str());
  if (r.plan.depth_tiling) {
    std::printf("wrote %s: dense %s with %lld layers (%s), %s\n", o.out.c_str(),
                std::string(family_model_type(c.family)).c_str(), (long long)c.num_hidden_layers,
                o.depth_order.c_str(), format_bytes(r.tensor_bytes).c_str());
  } else {
    std::printf("wrote %s: %s, %lld experts of width %lld, top-%lld (%s), %zu of %lld layers MoE, %s\n", o.out.c_str(),
                std::string(family_model_type(c.family)).c_str(), (long long)c.num_experts,
                (long long)c.moe_intermediate_size, (long long)c.num_experts_per_tok,
                c.topk_norm == TopkNorm::kRenormalize ? "renormalised" : "not renormalised", r.plan.moe_layers.size(),
                (long long)c.num_hidden_layers, format_bytes(r.tensor_bytes).c_str());
  }
  std::printf("recipe: %s\n", std::string(preservation_text(r.plan.preservation)).c_str());
  if (o.verify) run_verify(o, r.plan);
  return 0;
}

}  // namespace upcycle::cli
