// mergekit-moe plan → ConvertSpec, and the router rows of its gate mode (see mergekit_spec.h).
#include "recipes/mergekit_spec.h"

#include "backend/backend.h"
#include "core/error.h"
#include "data/tokenizer.h"
#include "io/model_config.h"
#include "model/load_model.h"
#include "recipes/router_from_prompts.h"
#include "recipes/source_models.h"

namespace upcycle::recipes {
namespace {

// mergekit tokenizes each prompt without special tokens and prefixes the BOS token (when the
// tokenizer has one: Qwen's has none).
std::vector<std::vector<int32_t>> tokenize_all(const data::Tokenizer& tok, const std::vector<std::string>& prompts) {
  std::vector<std::vector<int32_t>> out;
  for (const auto& text : prompts) {
    std::vector<int32_t> ids;
    if (auto bos = tok.bos_id()) ids.push_back(*bos);
    auto body = tok.encode(text, data::AddSpecial::kNo);
    ids.insert(ids.end(), body.begin(), body.end());
    out.push_back(std::move(ids));
  }
  return out;
}

}  // namespace

ConvertSpec convert_spec_from_mergekit(const MoePlan& plan) {
  ConvertSpec s;
  s.preset = "mergekit";
  s.sources = plan.sources;
  s.moe_layers = "all";
  s.experts = int64_t(plan.experts.size());
  s.top_k = plan.top_k;
  s.routing = RoutingOrder::kTopkSoftmax;  // Mixtral, and norm_topk_prob true in mergekit's Qwen writers
  s.scaling = ScalingKind::kNone;
  s.format = std::string(family_model_type(plan.output_family));
  s.dtype = plan.dtype;
  s.seed = plan.seed;
  s.non_ffn = plan.non_ffn == NonFfnSource::kAverageOfSources ? NonFfn::kAverage : NonFfn::kBase;
  s.router_init = RouterInit::kGiven;
  for (const auto& e : plan.experts) {
    s.expert_source.push_back(int64_t(e.source));
    s.expert_noise_std.push_back(e.noise_scale);
    s.expert_residual_scale.push_back(e.residual_scale);
  }
  if (plan.shared_expert) {
    s.shared_experts = 1;
    s.shared_source = int64_t(plan.shared_expert->source);
    s.shared_residual_scale = plan.shared_expert->residual_scale;
    s.shared_gate = plan.shared_expert_gate_from_init ? SharedGate::kGiven : SharedGate::kZero;
    if (plan.shared_expert->noise_scale != 0.0)
      throw Error("shared_experts[0].noise_scale: noise on the shared expert is not supported (routed experts only)");
  }
  return s;
}

std::vector<std::vector<float>> router_rows_for_experts(const std::filesystem::path& base, GateMode mode,
                                                        const std::vector<PromptTexts>& experts, uint64_t seed,
                                                        const std::string& label) {
  const ModelConfig config = read_model_config(base);
  if (!gate_mode_uses_prompts(mode)) return random_router_rows(config, int64_t(experts.size()), mode, seed);
  const data::Tokenizer tok = data::Tokenizer::load(base / "tokenizer.json");
  std::vector<ExpertPrompts> prompts;
  for (const auto& e : experts) prompts.push_back({tokenize_all(tok, e.positive), tokenize_all(tok, e.negative)});
  if (mode == GateMode::kCheapEmbed) {  // the prompts' embedding rows only: no model in memory
    const std::vector<SourceModel> source = open_sources({base});
    const int64_t D = config.hidden_size;
    return cheap_embed_router_rows(
        config, prompts,
        [&](int32_t id, float* row_D) { read_f32(source[0], "model.embed_tokens.weight", uint64_t(id) * uint64_t(D), uint64_t(D), row_D); },
        label);
  }
  std::unique_ptr<backend::Backend> be = backend::make_backend(backend::BackendKind::kCpu);
  std::unique_ptr<model::Transformer> model = model::load_transformer(config, base, *be);
  return router_from_prompts(*model, mode, prompts, seed, label);
}

std::vector<std::string> add_mergekit_router_rows(ConvertSpec& spec, const MoePlan& plan, const std::string& yaml) {
  const std::filesystem::path base = plan.sources.at(0);
  const int64_t E = int64_t(plan.experts.size());
  const bool shared_row = plan.shared_expert && plan.shared_expert_gate_from_init;
  const int64_t rows_per_layer = E + (shared_row ? 1 : 0);
  std::vector<PromptTexts> experts;
  for (const auto& e : plan.experts) experts.push_back({e.positive_prompts, e.negative_prompts});
  if (shared_row) experts.push_back({plan.shared_expert->positive_prompts, plan.shared_expert->negative_prompts});
  std::vector<std::vector<float>> rows = router_rows_for_experts(base, plan.gate_mode, experts, plan.seed, yaml);
  const int64_t D = int64_t(rows.at(0).size()) / rows_per_layer;

  // mergekit's degenerate-gate check sees the shared expert's gate row too.
  std::vector<std::string> warnings;
  if (auto w = degenerate_gate_warning(rows, rows_per_layer, D)) warnings.push_back(*w);
  spec.router_rows.clear();
  spec.shared_gate_rows.clear();
  for (auto& layer : rows) {
    if (shared_row) {
      spec.shared_gate_rows.emplace_back(layer.begin() + E * D, layer.end());
      layer.resize(size_t(E * D));
    }
    spec.router_rows.push_back(std::move(layer));
  }
  return warnings;
}

}  // namespace upcycle::recipes
