// Transformer::hidden_states: the residual stream entering each layer, as HF's output_hidden_states.
// Checked by construction: entry 0 is the embedding rows of the ids, and entry l+1 equals running the
// model truncated to l+1 layers (the truncated model's last residual = the full model's entry l+1).
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "backend/backend.h"
#include "model/transformer.h"
#include "support/model_test_support.h"

namespace upcycle::model {
namespace {

TEST(ModelHiddenStates, EmbeddingRowsThenEachLayersOutput) {
  ModelConfig config = test::tiny_model_config(Family::kLlama);
  auto be = backend::make_backend(backend::BackendKind::kCpu);
  Transformer full(config, *be);
  test::fill_random(full.params(), 7, 0.1f);
  const std::vector<int32_t> ids = {3, 1, 4, 1, 5, 9, 2};
  const int64_t T = int64_t(ids.size()), D = config.hidden_size, L = config.num_hidden_layers;
  full.forward(ids.data(), 1, T);

  const float* embed = full.params().find("model.embed_tokens.weight");
  for (int64_t t = 0; t < T; ++t)
    for (int64_t d = 0; d < D; ++d) EXPECT_EQ(full.hidden_states(0)[t * D + d], embed[ids[size_t(t)] * D + d]);

  ASSERT_GE(L, 2);
  ModelConfig shorter = config;
  shorter.num_hidden_layers = 1;
  Transformer one(shorter, *be);
  for (size_t i = 0; i < one.params().specs().size(); ++i) {
    const auto& name = one.params().specs()[i].name;
    auto dst = one.params().view(i);
    const float* src = full.params().find(name);
    std::copy(src, src + dst.size(), dst.begin());
  }
  one.forward(ids.data(), 1, T);
  for (int64_t i = 0; i < T * D; ++i) EXPECT_EQ(one.hidden_states(1)[i], full.hidden_states(1)[i]) << i;
}

}  // namespace
}  // namespace upcycle::model
