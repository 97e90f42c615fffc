// Greedy and nucleus sampling over the KV-cache decoder (see generate.h). Probabilities are computed
// in double from the fp32 logits; the nucleus is found by sorting token ids by (probability desc,
// id asc), which makes every choice deterministic for a given draw.
#include "model/generate.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "backend/host_view.h"
#include "core/error.h"
#include "core/rng.h"

namespace upcycle::model {

int32_t argmax_token(const float* logits_V, int64_t V) {
  UPCYCLE_CHECK(V > 0, "argmax over an empty vocabulary");
  int64_t best = 0;
  for (int64_t v = 1; v < V; ++v)
    if (logits_V[v] > logits_V[best]) best = v;  // strict: the first maximum wins
  return int32_t(best);
}

int32_t sample_token(const float* logits_V, int64_t V, const SamplingOptions& options, double u) {
  UPCYCLE_CHECK(options.temperature >= 0.0 && options.top_p > 0.0 && options.top_p <= 1.0, "bad sampling options");
  if (options.temperature == 0.0) return argmax_token(logits_V, V);
  // softmax(logits / T), shifted by the maximum so every exp is ≤ 1.
  const double max_logit = logits_V[argmax_token(logits_V, V)];
  std::vector<double> prob_V(static_cast<size_t>(V));
  double z = 0.0;
  for (int64_t v = 0; v < V; ++v)
    z += prob_V[size_t(v)] = std::exp((double(logits_V[v]) - max_logit) / options.temperature);
  for (double& p : prob_V) p /= z;

  std::vector<int32_t> order(static_cast<size_t>(V));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return prob_V[size_t(a)] > prob_V[size_t(b)]; });
  // Nucleus: keep rank r while the mass ranked before it is < top_p (HF TopPLogitsWarper).
  size_t kept = order.size();
  if (options.top_p < 1.0) {
    double before = 0.0;
    kept = 0;
    while (kept < order.size() && (kept == 0 || before < options.top_p)) before += prob_V[size_t(order[kept++])];
  }
  double mass = 0.0;
  for (size_t r = 0; r < kept; ++r) mass += prob_V[size_t(order[r])];
  const double target = u * mass;
  double cum = 0.0;
  for (size_t r = 0; r < kept; ++r) {
    cum += prob_V[size_t(order[r])];
    if (target < cum) return order[r];
  }
  return order[kept - 1];  // u·mass rounded up to the full mass
}

GenerateResult generate(Transformer& model, std::span<const int32_t> prompt, const GenerateOptions& options) {
  UPCYCLE_CHECK(!prompt.empty() && options.max_new_tokens > 0, "generate needs a prompt and max_new_tokens ≥ 1");
  const int64_t V = model.config().vocab_size, P = int64_t(prompt.size());
  const CounterRng rng(options.seed, "generate");
  model.reset_cache(P + options.max_new_tokens);
  GenerateResult result;
  // Sampling runs on the host: one readback of the last position's V logits per generated token.
  backend::HostView<float> last_V =
      backend::host_view(model.backend(), model.decode(prompt.data(), P) + (P - 1) * V, size_t(V));
  for (int64_t k = 0; k < options.max_new_tokens; ++k) {
    const int32_t token = sample_token(last_V.data(), V, options.sampling, rng.uniform(uint64_t(k)));
    result.tokens.push_back(token);
    if (std::find(options.eos_ids.begin(), options.eos_ids.end(), token) != options.eos_ids.end()) {
      result.stopped_at_eos = true;
      break;
    }
    if (k + 1 < options.max_new_tokens)
      last_V = backend::host_view(model.backend(), model.decode(&token, 1), size_t(V));
  }
  return result;
}

std::vector<int32_t> eos_token_ids(const ModelConfig& config, const std::string& config_file) {
  if (!config.raw.is_object() || !config.raw.contains("eos_token_id")) return {};
  const Json& eos = config.raw["eos_token_id"];
  auto as_id = [&](const Json& j) {
    if (!j.is_number_integer() || j.get<int64_t>() < 0 || j.get<int64_t>() > INT32_MAX)
      throw Error("eos_token_id must be a non-negative integer or a list of them (got " + j.dump() + ")", config_file);
    return int32_t(j.get<int64_t>());
  };
  if (eos.is_null()) return {};
  if (!eos.is_array()) return {as_id(eos)};
  std::vector<int32_t> ids;
  for (const Json& j : eos) ids.push_back(as_id(j));
  return ids;
}

}  // namespace upcycle::model
