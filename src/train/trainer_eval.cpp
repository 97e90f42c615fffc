// Evaluation during training: each --val dataset's first windows (at most --eval-tokens predicted
// tokens, read once at start) through model::evaluate_windows, in inference phase (no router jitter;
// the expert bias, part of the current routing, stays). Evaluation changes no training state, so runs
// with and without evaluation train identically.
#include "model/evaluate.h"
#include "train/trainer.h"

namespace upcycle::train {

std::vector<EvalRecord> Trainer::evaluate() {
  std::vector<EvalRecord> records;
  model_->set_phase(model::Phase::kInference);
  for (const auto& v : val_) {
    model::EvalResult e = model::evaluate_windows(*model_, v.tokens, options_.seq_len, options_.micro_batch, nullptr);
    records.push_back({v.domain, e.loss, e.perplexity, e.tokens, std::move(e.routing)});
  }
  return records;
}

}  // namespace upcycle::train
