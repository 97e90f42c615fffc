// One training step of a small model on a chosen backend, for the tests that compare compute
// precisions (backend_bf16_test: cpu-bf16 vs cpu; gpu/cuda_model_test: cuda vs cpu-bf16): a dense
// Llama (D=64, 4 heads, GQA 2, S=16, F=96, V=96) and its 4-expert top-2 Mixtral twin, parameters filled
// on the host and uploaded (so the same values reach a device backend), routers ×10, a fixed batch of
// 2 × 24 tokens. Returns the logits, the loss and every gradient (flat, parameter order, with each
// tensor's range for per-tensor checks).
// Why routers ×10: with the 0.1 fill many tokens have near-tied experts, and bf16 noise in the residual
// stream flips their top-2 choice — a discrete change of whole token contributions that says nothing
// about matmul precision.
#pragma once

#include <cmath>
#include <span>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "backend/host_memory.h"
#include "backend/host_view.h"
#include "model/transformer.h"
#include "support/model_test_support.h"

namespace upcycle::test {

inline ModelConfig precision_dense_config() {
  ModelConfig c = tiny_model_config(Family::kLlama);
  c.vocab_size = 96;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  return c;
}

inline ModelConfig precision_moe_config() { return moe_twin(precision_dense_config(), Family::kMixtral, 4, 2); }

struct PrecisionStep {
  std::vector<float> logits;
  double loss = 0.0;
  std::vector<float> grads;  // the whole gradient buffer, in parameter order
  std::vector<std::pair<size_t, size_t>> grad_ranges;  // each parameter's gradient: (offset, size) in grads
};

inline std::vector<float> precision_parameters(const ModelConfig& config) {
  model::TensorStore store = model::TensorStore::for_config(config, backend::host_memory());
  fill_random(store, 77, 0.1f);
  for (size_t i = 0; i < store.specs().size(); ++i)
    if (store.specs()[i].role == WeightRole::kRouter)
      for (float& v : store.view(i)) v *= 10.0f;
  return store.buffer().to_host();
}

inline PrecisionStep precision_train_step(const ModelConfig& config, backend::BackendKind kind) {
  auto be = backend::make_backend(kind);
  model::Transformer m(config, *be);
  m.params().buffer().upload(precision_parameters(config));
  if (config.is_moe()) m.set_moe_options(model::moe_options_from_config(config));
  const int64_t B = 2, Tseq = 24, T = B * Tseq;
  std::vector<int32_t> ids(static_cast<size_t>(T)), targets(ids.size());
  for (size_t t = 0; t < ids.size(); ++t) ids[t] = int32_t((t * 7 + t / 5) % size_t(config.vocab_size));
  for (size_t t = 0; t < ids.size(); ++t) targets[t] = (t + 1) % size_t(Tseq) == 0 ? -1 : ids[t + 1];
  m.zero_grads();
  const float* logits = m.forward(ids.data(), B, Tseq);
  PrecisionStep r;
  const auto logits_host = backend::host_view(*be, logits, size_t(T * config.vocab_size));
  r.logits.assign(logits_host.data(), logits_host.data() + logits_host.size());
  r.loss = m.loss(targets.data());
  m.backward();
  r.grads = m.grads().buffer().to_host();
  for (size_t i = 0; i < m.grads().specs().size(); ++i) {  // pointer arithmetic only: no device read
    const std::span<const float> g = std::as_const(m.grads()).view(i);
    r.grad_ranges.emplace_back(size_t(g.data() - m.grads().data()), g.size());
  }
  return r;
}

// Cosine similarity in double.
inline double cosine(std::span<const float> a, std::span<const float> b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ab += double(a[i]) * b[i];
    aa += double(a[i]) * a[i];
    bb += double(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

}  // namespace upcycle::test
