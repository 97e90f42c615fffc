// optimizer.safetensors: save → load restores moments bitwise and the step, with the metadata and
// tensor names of the header; a missing tensor, a wrong shape, an extra tensor or a file that is no
// optimizer state are Errors naming the file and leave the optimizer unchanged. Broadcasting dense
// moments into an upcycled model: every routed expert (and a shared expert of the same width) of
// layer l holds the dense FFN's moments of layer l, same-named weights are copied, routers and
// shared-expert gates start at zero and are reported; expected sources are derived here from the
// names with string edits, independently of the role-based mapping in the implementation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/rng.h"
#include "io/safetensors.h"
#include "support/expect_error.h"
#include "support/model_test_support.h"
#include "support/test_support.h"
#include "train/optimizer_state.h"

namespace upcycle::train {
namespace {

using test::moe_twin, test::tiny_model_config;

// The backend holding the moments: they cross only through upload and download, as on a device.
backend::Backend& be() {
  static const std::unique_ptr<backend::Backend> cpu = backend::make_backend(backend::BackendKind::kCpu);
  return *cpu;
}

// Distinct values in every moment element (m signed, v positive), and a step count.
void fill_moments(AdamW& opt, uint64_t seed, int64_t steps) {
  std::vector<float> m(opt.exp_avg().size()), v(opt.exp_avg_sq().size());
  CounterRng(seed, "m").fill_normal(m.data(), 0, m.size(), 0.0f, 1.0f);
  CounterRng(seed, "v").fill_normal(v.data(), 0, v.size(), 0.0f, 1.0f);
  for (float& x : v) x = x * x + 1e-3f;
  opt.exp_avg().upload(m);
  opt.exp_avg_sq().upload(v);
  opt.set_steps(steps);
}

// The moments of parameter `name` (first the m span, then the v span).
std::pair<std::vector<float>, std::vector<float>> moments_of(const AdamW& opt, const std::string& name) {
  size_t offset = 0;
  const std::vector<float> m = opt.exp_avg().to_host(), v = opt.exp_avg_sq().to_host();
  for (const WeightSpec& spec : opt.specs()) {
    const size_t n = shape_numel(spec.shape);
    if (spec.name == name)
      return {{m.begin() + long(offset), m.begin() + long(offset + n)},
              {v.begin() + long(offset), v.begin() + long(offset + n)}};
    offset += n;
  }
  ADD_FAILURE() << "no parameter " << name;
  return {};
}

ModelConfig tiny_mixtral() { return moe_twin(tiny_model_config(Family::kLlama), Family::kMixtral, 4, 2); }

TEST(OptimizerState, SaveLoadRoundTripIsBitwise) {
  test::ScratchDir dir;
  AdamWConfig config{.beta1 = 0.85, .beta2 = 0.99, .eps = 1e-7, .weight_decay = 0.05};
  AdamW saved(be(), expected_weights(tiny_mixtral()), config);
  fill_moments(saved, 3, 17);
  const auto file = dir / "optimizer.safetensors";
  save_optimizer_state(saved, file);

  const SafetensorsFile st = SafetensorsFile::open(file);
  EXPECT_EQ(st.metadata().at("format"), "pt");
  EXPECT_EQ(st.metadata().at("step"), "17");
  EXPECT_EQ(std::stod(st.metadata().at("beta1")), 0.85);
  EXPECT_EQ(std::stod(st.metadata().at("beta2")), 0.99);
  EXPECT_EQ(std::stod(st.metadata().at("eps")), 1e-7);
  EXPECT_EQ(std::stod(st.metadata().at("weight_decay")), 0.05);
  EXPECT_EQ(st.tensors().size(), 2 * saved.specs().size());
  const TensorInfo* router = st.find("exp_avg_sq.model.layers.1.block_sparse_moe.gate.weight");
  ASSERT_NE(router, nullptr);
  EXPECT_EQ(router->dtype, DType::kF32);
  EXPECT_EQ(router->shape, (Shape{4, 8}));

  AdamW loaded(be(), expected_weights(tiny_mixtral()), config);
  load_optimizer_state(loaded, file);
  EXPECT_EQ(loaded.steps(), 17);
  ASSERT_EQ(loaded.exp_avg().size(), saved.exp_avg().size());
  EXPECT_EQ(loaded.exp_avg().to_host(), saved.exp_avg().to_host());
  EXPECT_EQ(loaded.exp_avg_sq().to_host(), saved.exp_avg_sq().to_host());
  // Tensor data are the parameter's moments, not merely the same buffer overall.
  const auto [m, v] = moments_of(saved, "model.layers.1.block_sparse_moe.gate.weight");
  std::vector<float> on_disk(m.size());
  std::memcpy(on_disk.data(), st.data(*router).data(), on_disk.size() * 4);
  EXPECT_EQ(on_disk, v);
}

TEST(OptimizerState, MismatchesAreErrorsNamingTheFile) {
  test::ScratchDir dir;
  const ModelConfig base = tiny_model_config(Family::kLlama);
  AdamW saved(be(), expected_weights(base), {});
  fill_moments(saved, 1, 4);
  const auto file = dir / "optimizer.safetensors";
  save_optimizer_state(saved, file);

  ModelConfig tied = base;  // no lm_head: the file has tensors this model lacks
  tied.tie_word_embeddings = true;
  ModelConfig wider = base;  // every matrix of another shape
  wider.vocab_size = 12;
  ModelConfig deeper = base;  // layer 2 missing from the file
  deeper.num_hidden_layers = 3;
  struct Case {
    ModelConfig config;
    const char* needle;
  };
  for (const Case& c : {Case{tied, "has tensor exp_avg.lm_head.weight, which this model has no parameter for"},
                        Case{wider, "exp_avg.model.embed_tokens.weight has shape [11, 8], expected [12, 8]"},
                        Case{deeper, "no tensor exp_avg.model.layers.2.input_layernorm.weight"}}) {
    SCOPED_TRACE(c.needle);
    AdamW opt(be(), expected_weights(c.config), {});
    EXPECT_UPCYCLE_ERROR(load_optimizer_state(opt, file), c.needle, file.string());
    EXPECT_EQ(opt.steps(), 0);
    for (float x : opt.exp_avg().to_host()) ASSERT_EQ(x, 0.0f);  // untouched
  }
  // A model checkpoint is not an optimizer state.
  const auto model_file = dir / "model.safetensors";
  test::write_safetensors_raw(model_file, R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                              std::string(4, '\0'));
  AdamW opt(be(), expected_weights(base), {});
  EXPECT_UPCYCLE_ERROR(load_optimizer_state(opt, model_file), "no \"step\"", model_file.string());
  EXPECT_UPCYCLE_ERROR(broadcast_dense_moments(opt, model_file), "no \"step\"", model_file.string());
  test::write_safetensors_raw(model_file,
                              R"({"__metadata__":{"step":"3"},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                              std::string(4, '\0'));
  EXPECT_UPCYCLE_ERROR(broadcast_dense_moments(opt, model_file), "unexpected tensor w", model_file.string());
}

// The dense parameter whose moments `moe_name` should receive, by string edits of the name alone:
// routed experts (Mixtral w1/w3/w2, Qwen gate/up/down_proj) and shared experts → the layer's dense MLP.
std::string expected_source(const std::string& moe_name) {
  const std::string_view name = moe_name;
  const size_t mixtral = name.find("block_sparse_moe.experts.");
  if (mixtral != std::string_view::npos) {  // ….experts.j.w1.weight: w1 gate, w3 up, w2 down
    const std::string_view w = name.substr(name.size() - std::string_view("w1.weight").size(), 2);
    const char* proj = w == "w1" ? "gate_proj" : w == "w3" ? "up_proj" : "down_proj";
    return std::string(name.substr(0, mixtral)) + "mlp." + proj + ".weight";
  }
  for (std::string_view marker : {"mlp.experts.", "mlp.shared_expert."}) {
    const size_t at = name.find(marker);
    if (at == std::string_view::npos || !name.ends_with("_proj.weight")) continue;
    const size_t proj = name.rfind('.', name.size() - std::string_view(".weight").size() - 1) + 1;
    return std::string(name.substr(0, at)) + "mlp." + std::string(name.substr(proj));
  }
  return moe_name;
}

struct BroadcastCase {
  const char* name;
  ModelConfig dense, moe;
  std::vector<std::string> fresh;  // expected, in spec order
};

std::vector<BroadcastCase> broadcast_cases() {
  std::vector<BroadcastCase> cases;
  const ModelConfig llama = tiny_model_config(Family::kLlama);
  cases.push_back({"mixtral", llama, tiny_mixtral(),
                   {"model.layers.0.block_sparse_moe.gate.weight", "model.layers.1.block_sparse_moe.gate.weight"}});
  // qwen2_moe with a shared expert as wide as the dense FFN (copied) and layer 1 kept dense.
  const ModelConfig qwen2 = tiny_model_config(Family::kQwen2);
  ModelConfig qwen2moe = moe_twin(qwen2, Family::kQwen2Moe, 3, 2);
  qwen2moe.shared_expert_intermediate_size = qwen2.intermediate_size;
  qwen2moe.mlp_only_layers = {1};
  cases.push_back({"qwen2moe_shared", qwen2, qwen2moe,
                   {"model.layers.0.mlp.gate.weight", "model.layers.0.mlp.shared_expert_gate.weight"}});
  // A narrower shared expert has no counterpart of equal shape: fresh, reported.
  ModelConfig narrow = qwen2moe;
  narrow.shared_expert_intermediate_size = 6;
  cases.push_back({"qwen2moe_narrow_shared", qwen2, narrow,
                   {"model.layers.0.mlp.gate.weight", "model.layers.0.mlp.shared_expert.gate_proj.weight",
                    "model.layers.0.mlp.shared_expert.up_proj.weight",
                    "model.layers.0.mlp.shared_expert.down_proj.weight",
                    "model.layers.0.mlp.shared_expert_gate.weight"}});
  return cases;
}

TEST(OptimizerState, BroadcastDenseMomentsIntoExperts) {
  for (const BroadcastCase& c : broadcast_cases()) {
    SCOPED_TRACE(c.name);
    test::ScratchDir dir;
    AdamW dense(be(), expected_weights(c.dense), {});
    fill_moments(dense, 11, 250);
    const auto file = dir / "optimizer.safetensors";
    save_optimizer_state(dense, file);

    AdamW moe(be(), expected_weights(c.moe), {});
    fill_moments(moe, 12, 0);  // stale values: broadcast must overwrite every element
    const MomentBroadcast result = broadcast_dense_moments(moe, file);
    EXPECT_EQ(moe.steps(), 0);  // the step count is the caller's decision
    EXPECT_EQ(result.fresh, c.fresh);
    EXPECT_EQ(result.copied, int64_t(moe.specs().size() - c.fresh.size()));
    int64_t expert_copies = 0;
    for (const WeightSpec& spec : moe.specs()) {
      const auto [m, v] = moments_of(moe, spec.name);
      const bool fresh = std::find(c.fresh.begin(), c.fresh.end(), spec.name) != c.fresh.end();
      if (fresh) {
        EXPECT_EQ(m, std::vector<float>(m.size(), 0.0f)) << spec.name;
        EXPECT_EQ(v, std::vector<float>(v.size(), 0.0f)) << spec.name;
        continue;
      }
      const std::string source = expected_source(spec.name);
      expert_copies += source != spec.name;
      const auto [dm, dv] = moments_of(dense, source);
      EXPECT_EQ(m, dm) << spec.name << " from " << source;
      EXPECT_EQ(v, dv) << spec.name << " from " << source;
    }
    EXPECT_GE(expert_copies, 3 * c.moe.num_experts);  // at least one layer's experts came from its MLP
  }
}

}  // namespace
}  // namespace upcycle::train
