// check_model_size_limits: counts in double, so no product of config values can overflow while the
// limits are checked (each value is ≤ 2^31, a product of three ≤ 2^93, exact enough to compare).
#include "io/model_limits.h"

#include <algorithm>
#include <cstdio>

#include "core/error.h"

namespace upcycle {
namespace {

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

}  // namespace

void check_model_size_limits(const ModelConfig& c, const std::string& file) {
  if (c.num_hidden_layers > kMaxLayers)
    throw Error("'num_hidden_layers' (" + std::to_string(c.num_hidden_layers) + ") is above upcycle's limit of " +
                    std::to_string(kMaxLayers),
                file);
  if (c.num_experts > kMaxExperts)
    throw Error("the expert count ('num_local_experts' / 'num_experts': " + std::to_string(c.num_experts) + ") is above upcycle's limit of " +
                    std::to_string(kMaxExperts),
                file);
  if (const int64_t slots = c.num_hidden_layers * std::max<int64_t>(c.num_experts, 1); slots > kMaxExpertSlots)
    throw Error("'num_hidden_layers' × experts (" + std::to_string(slots) +
                    ") is above upcycle's limit of " + std::to_string(kMaxExpertSlots) + " expert FFNs",
                file);
  const double D = double(c.hidden_size), V = double(c.vocab_size);
  const double q = double(c.num_attention_heads) * double(c.head_dim);
  const double kv = double(c.num_key_value_heads) * double(c.head_dim);
  const double ffn = std::max(double(c.intermediate_size), double(c.moe_intermediate_size));
  const double shared = double(c.shared_expert_intermediate_size);
  // The largest single tensor of any layout: embedding, q/o projections, one FFN matrix or a fused
  // [E, 2F, D] expert stack.
  struct Big {
    const char* what;
    double elements;
  };
  const Big tensors[] = {{"'vocab_size' × 'hidden_size'", V * D},
                         {"'num_attention_heads' × 'head_dim' × 'hidden_size'", q * D},
                         {"the FFN width × 'hidden_size'", ffn * D},
                         {"experts × 2 × FFN width × 'hidden_size'", double(c.num_experts) * 2 * ffn * D}};
  for (const Big& t : tensors)
    if (t.elements > kMaxTensorElements)
      throw Error(std::string(t.what) + " gives a tensor of " + fmt(t.elements) + " elements, above upcycle's limit of " +
                      fmt(kMaxTensorElements),
                  file);
  const double per_layer = 2 * q * D + 2 * kv * D + 3 * D * (ffn * std::max<double>(double(c.num_experts), 1) + shared) +
                           double(c.num_experts) * D;
  const double total = 2 * V * D + double(c.num_hidden_layers) * per_layer;
  if (total > kMaxParameters)
    throw Error("the config describes about " + fmt(total) + " parameters, above upcycle's limit of " +
                    fmt(kMaxParameters) + " (check 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'vocab_size')",
                file);
}

}  // namespace upcycle
