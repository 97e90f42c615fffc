// Evaluation during training: each --val dataset's first windows (at most --eval-tokens predicted
// tokens, read once at start) through model::evaluate_windows, in inference phase and routed as the
// checkpoint will be: no router jitter and no aux-loss-free selection bias (HF checkpoints have no place
// for it) — except dots1, whose bias is the e_score_correction_bias weight, which the model keeps
// routing with once the training copy is swapped out — so `upcycle eval` on a checkpoint reproduces
// the logged loss. Evaluation changes no training
// state (the biases are put back), so runs with and without evaluation train identically.
#include "model/evaluate.h"
#include "train/trainer.h"

namespace upcycle::train {

std::vector<EvalRecord> Trainer::evaluate() {
  std::vector<EvalRecord> records;
  std::vector<backend::Buffer<float>> biases(size_t(config_.num_hidden_layers));
  if (options_.expert_bias_rate > 0)
    for (int64_t l = 0; l < config_.num_hidden_layers; ++l)
      if (config_.is_moe_layer(l)) std::swap(biases[size_t(l)], model_->expert_bias(l));  // leaves it empty: no bias
  model_->set_phase(model::Phase::kInference);
  for (const auto& v : val_) {
    model::EvalResult e = model::evaluate_windows(*model_, v.tokens, options_.seq_len, options_.micro_batch, nullptr);
    records.push_back({v.domain, e.loss, e.perplexity, e.tokens, std::move(e.routing)});
  }
  for (int64_t l = 0; l < config_.num_hidden_layers; ++l)
    if (!biases[size_t(l)].empty()) std::swap(biases[size_t(l)], model_->expert_bias(l));
  return records;
}

}  // namespace upcycle::train
