// recipes::convert on tiny checkpoints of each family, checked against the dense source read back
// independently: copies are byte-exact, shards and scaling are the documented slices and factors,
// drop re-draws exactly ⌊r·F⌋ neurons, virtual groups preserve the function (and cube-root scaling
// does not), output is deterministic by seed whatever the thread count, several sources map experts
// and average non-FFN weights, refusals leave no output, and the fused expert layout holds the
// per-expert layout's values.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <functional>
#include <set>

#include "core/error.h"
#include "core/file_util.h"
#include "core/rng.h"
#include "io/checkpoint.h"
#include "io/checkpoint_writer.h"
#include "io/model_presets.h"
#include "io/random_init.h"
#include "io/weight_table.h"
#include "recipes/converter.h"
#include "recipes/verify.h"
#include "support/test_support.h"

namespace upcycle::recipes {
namespace {
namespace fs = std::filesystem;
using test::ScratchDir;

// A tiny dense checkpoint with every weight ~ N(0, 0.1²) (biases too, norms 1 + N(0, 0.1²)), so
// biases are non-zero and verify sees real signal. D=64, F=192, L=2, V=512, H=4, KV=2.
fs::path make_dense(const fs::path& dir, Family family, uint64_t seed, std::function<void(ModelConfig&)> tweak = {}) {
  ModelConfig c = preset_config(family, "tiny");
  c.dtype = DType::kF32;
  if (tweak) tweak(c);
  fs::create_directories(dir);
  write_model_config(dir, c);
  write_text_file(dir / "tokenizer.json", "{\"model\": {\"type\": \"BPE\"}}\n");
  write_text_file(dir / "generation_config.json", "{\"bos_token_id\": 1}\n");
  std::vector<TensorDecl> decls;
  auto specs = expected_weights(c);
  for (const auto& w : specs) decls.push_back({w.name, c.dtype, w.shape});
  CheckpointWriter writer(dir, decls);
  for (const auto& w : specs) {
    std::vector<float> v(size_t(shape_numel(w.shape)));
    CounterRng(seed, w.name).fill_normal(v.data(), 0, v.size(), 0.0f, 0.1f);
    const bool norm = w.role == WeightRole::kAttnNorm || w.role == WeightRole::kMlpNorm ||
                      w.role == WeightRole::kFinalNorm || w.role == WeightRole::kQNorm || w.role == WeightRole::kKNorm;
    if (norm)
      for (float& x : v) x += 1.0f;
    writer.write_f32(w.name, v);
  }
  writer.finish();
  return dir;
}

std::vector<float> tensor_f32(const fs::path& dir, const std::string& name) {
  Checkpoint ckpt = Checkpoint::open(dir);
  const TensorRef* ref = ckpt.find(name);
  EXPECT_NE(ref, nullptr) << name;
  if (!ref) return {};
  auto bytes = ref->file->data(*ref->info);
  std::vector<float> out(size_t(ref->info->numel()));
  convert_floats(bytes.data(), ref->info->dtype, out.data(), DType::kF32, out.size());
  return out;
}

ModelConfig table_ok(const fs::path& dir) {
  ModelConfig c = read_model_config(dir);
  Checkpoint ckpt = Checkpoint::open(dir);
  std::map<std::string, Shape, std::less<>> shapes;
  for (const auto& [name, ref] : ckpt.tensors()) shapes[name] = ref.info->shape;
  auto table = WeightTable::build(c, shapes);
  EXPECT_TRUE(table.ok()) << (table.problems().empty() ? "" : table.problems()[0]);
  return c;
}

ConvertResult run(ConvertSpec spec, const fs::path& out) {
  return convert(spec, {out, Overwrite::kRefuse, 5'000'000'000ull, ShowProgress::kNo});
}

double verify_logits(const fs::path& dense, const fs::path& moe) { return verify_conversion(dense, moe, {}).logits_relative; }

// Rows j (gate/up [W, D]) or columns j (down [D, W]) of `m` as a vector.
std::vector<float> neuron(const std::vector<float>& m, int64_t W, int64_t D, bool down, int64_t j) {
  std::vector<float> out;
  for (int64_t d = 0; d < D; ++d) out.push_back(m[size_t(down ? d * W + j : j * D + d)]);
  return out;
}

const std::string L0 = "model.layers.0.", L1 = "model.layers.1.";

TEST(Convert, CopyToMixtralIsByteExactAndPreservesTheFunction) {
  ScratchDir tmp;
  auto dense = make_dense(tmp / "dense", Family::kLlama, 1);
  ConvertSpec s;
  s.sources = {dense};
  s.experts = 4, s.top_k = 2;
  auto r = run(s, tmp / "moe");
  ModelConfig c = table_ok(tmp / "moe");
  EXPECT_EQ(c.family, Family::kMixtral);
  EXPECT_EQ(c.num_experts, 4);
  EXPECT_EQ(r.plan.preservation, Preservation::kExact);
  for (int e = 0; e < 4; ++e) {
    const std::string p = L1 + "block_sparse_moe.experts." + std::to_string(e) + ".";
    EXPECT_EQ(tensor_f32(tmp / "moe", p + "w1.weight"), tensor_f32(dense, L1 + "mlp.gate_proj.weight"));
    EXPECT_EQ(tensor_f32(tmp / "moe", p + "w2.weight"), tensor_f32(dense, L1 + "mlp.down_proj.weight"));
    EXPECT_EQ(tensor_f32(tmp / "moe", p + "w3.weight"), tensor_f32(dense, L1 + "mlp.up_proj.weight"));
  }
  EXPECT_EQ(tensor_f32(tmp / "moe", L0 + "self_attn.q_proj.weight"), tensor_f32(dense, L0 + "self_attn.q_proj.weight"));
  EXPECT_EQ(tensor_f32(tmp / "moe", "model.embed_tokens.weight"), tensor_f32(dense, "model.embed_tokens.weight"));
  EXPECT_EQ(read_text_file(tmp / "moe" / "tokenizer.json", "t"), read_text_file(dense / "tokenizer.json", "t"));
  EXPECT_TRUE(fs::exists(tmp / "moe" / "generation_config.json"));
  EXPECT_EQ(c.raw["upcycle_recipe"]["expert_init"], "copy");
  Checkpoint out = Checkpoint::open(tmp / "moe");
  EXPECT_NE(out.shards()[0].metadata().at("upcycle_recipe").find("\"experts\":4"), std::string::npos);
  EXPECT_LT(verify_logits(dense, tmp / "moe"), 1e-5);
}

TEST(Convert, VirtualGroupsShardScaleAndPreserve) {
  ScratchDir tmp;
  auto dense = make_dense(tmp / "dense", Family::kLlama, 2);
  ConvertSpec s;
  s.sources = {dense};
  s.moe_layers = "1";
  s.experts = 4, s.top_k = 2, s.granularity = 2;
  auto r = run(s, tmp / "moe");
  ModelConfig c = table_ok(tmp / "moe");
  EXPECT_EQ(c.family, Family::kQwen2Moe);  // partial MoE: mixtral cannot
  EXPECT_EQ(c.mlp_only_layers, std::vector<int64_t>{0});
  EXPECT_EQ(c.moe_intermediate_size, 96);
  EXPECT_EQ(r.plan.scale, 2.0);
  EXPECT_EQ(r.plan.preservation, Preservation::kExact);
  auto gate = tensor_f32(dense, L1 + "mlp.gate_proj.weight"), down = tensor_f32(dense, L1 + "mlp.down_proj.weight");
  auto g3 = tensor_f32(tmp / "moe", L1 + "mlp.experts.3.gate_proj.weight");
  auto d3 = tensor_f32(tmp / "moe", L1 + "mlp.experts.3.down_proj.weight");
  for (int64_t j = 0; j < 96; ++j) {
    EXPECT_EQ(neuron(g3, 96, 64, false, j), neuron(gate, 192, 64, false, 96 + j));  // shard 3 mod 2 = 1
    auto expect = neuron(down, 192, 64, true, 96 + j);
    for (float& x : expect) x *= 2.0f;  // s = G, down mode
    EXPECT_EQ(neuron(d3, 96, 64, true, j), expect);
  }
  auto router = tensor_f32(tmp / "moe", L1 + "mlp.gate.weight");
  auto row = [&](int e) { return std::vector<float>(router.begin() + e * 64, router.begin() + (e + 1) * 64); };
  EXPECT_EQ(row(0), row(1));
  EXPECT_EQ(row(2), row(3));
  EXPECT_NE(row(0), row(2));
  for (float b : tensor_f32(tmp / "moe", L0 + "self_attn.q_proj.bias")) EXPECT_EQ(b, 0.0f);  // synthesised
  EXPECT_EQ(tensor_f32(tmp / "moe", L0 + "mlp.up_proj.weight"), tensor_f32(dense, L0 + "mlp.up_proj.weight"));
  EXPECT_LT(verify_logits(dense, tmp / "moe"), 1e-4);
}

TEST(Convert, SoftmaxTopkIsExactOnlyWithZeroRouterAndDownScaling) {
  ScratchDir tmp;
  auto dense = make_dense(tmp / "dense", Family::kLlama, 3);
  ConvertSpec s;
  s.sources = {dense};
  s.experts = 4, s.top_k = 2, s.granularity = 2;
  s.routing = RoutingOrder::kSoftmaxTopk;
  s.router_init = RouterInit::kZeros;
  auto r = run(s, tmp / "zeros");
  EXPECT_EQ(r.plan.scale, 4.0);  // E·G/K
  EXPECT_EQ(r.plan.preservation, Preservation::kExact);
  EXPECT_LT(verify_logits(dense, tmp / "zeros"), 1e-4);
  s.router_init = RouterInit::kNormal;  // p only ≈ 1/E: verify can tell
  auto r2 = run(s, tmp / "normal");
  EXPECT_EQ(r2.plan.preservation, Preservation::kNo);
  EXPECT_GT(verify_logits(dense, tmp / "normal"), 1e-4);
}

TEST(Convert, CubeRootScalingIsOnlyApproximateForSwiGLU) {
  ScratchDir tmp;
  auto dense = make_dense(tmp / "dense", Family::kLlama, 4);
  ConvertSpec s;
  s.sources = {dense};
  s.experts = 4, s.top_k = 2, s.granularity = 2;
  s.scaling_mode = ScalingMode::kCubeRoot;
  auto r = run(s, tmp / "moe");
  EXPECT_EQ(r.plan.preservation, Preservation::kNo);
  EXPECT_DOUBLE_EQ(r.plan.scales.gate, std::cbrt(2.0));
  auto g = tensor_f32(tmp / "moe", L0 + "block_sparse_moe.experts.0.w1.weight");
  auto dg = tensor_f32(dense, L0 + "mlp.gate_proj.weight");
  EXPECT_FLOAT_EQ(g[5], dg[5] * float(std::cbrt(2.0)));
  EXPECT_GT(verify_logits(dense, tmp / "moe"), 1e-4);
}

TEST(Convert, DropRedrawsExactlyFloorRFNeuronsPerExpert) {
  ScratchDir tmp;
  auto dense = make_dense(tmp / "dense", Family::kLlama, 5);
  ConvertSpec s;
  s.sources = {dense};
  s.experts = 4, s.top_k = 2;
  s.expert_init = ExpertInit::kDrop;
  s.drop_ratio = 0.5;
  s.seed = 9;
  run(s, tmp / "moe");
  auto gate = tensor_f32(dense, L0 + "mlp.gate_proj.weight"), down = tensor_f32(dense, L0 + "mlp.down_proj.weight");
  std::set<std::set<int64_t>> distinct;
  for (int e = 0; e < 4; ++e) {
    const std::string p = L0 + "block_sparse_moe.experts." + std::to_string(e) + ".";
    auto g = tensor_f32(tmp / "moe", p + "w1.weight"), d = tensor_f32(tmp / "moe", p + "w2.weight");
    std::set<int64_t> gs, ds;
    for (int64_t j = 0; j < 192; ++j) {
      if (neuron(g, 192, 64, false, j) != neuron(gate, 192, 64, false, j)) gs.insert(j);
      if (neuron(d, 192, 64, true, j) != neuron(down, 192, 64, true, j)) ds.insert(j);
    }
    EXPECT_EQ(gs.size(), 96u);
    EXPECT_EQ(gs, ds);  // neuron scope: the same neurons in gate and down
    distinct.insert(gs);
  }
  EXPECT_EQ(distinct.size(), 4u);
}

TEST(Convert, SameSeedSameBytesForAnyThreadCount) {
  ScratchDir tmp;
  auto dense = make_dense(tmp / "dense", Family::kQwen2, 6);
  ConvertSpec s;
  s.sources = {dense};
  s.experts = 6, s.top_k = 2, s.granularity = 2, s.shared_experts = 1;
  s.split = ExpertSplit::kShuffled;
  s.expert_init = ExpertInit::kDrop;
  s.seed = 4;
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  run(s, tmp / "a");
  omp_set_num_threads(2);
  run(s, tmp / "b");
  omp_set_num_threads(threads);
  s.seed = 5;
  run(s, tmp / "c");
  const std::string a = test::read_bytes(tmp / "a" / "model.safetensors");
  EXPECT_EQ(a, test::read_bytes(tmp / "b" / "model.safetensors"));
  EXPECT_NE(a, test::read_bytes(tmp / "c" / "model.safetensors"));
  table_ok(tmp / "a");
}

TEST(Convert, RandomExpertsAndFromScratchFollowInitsRule) {
  ScratchDir tmp;
  auto dense = make_dense(tmp / "dense", Family::kLlama, 7);
  ConvertSpec s;
  s.sources = {dense};
  s.experts = 2, s.top_k = 1;
  s.expert_init = ExpertInit::kRandom;
  s.seed = 3;
  s.rng_version = RngVersion::kV1;  // init's stream: init's very values
  run(s, tmp / "random");
  ModelConfig c = table_ok(tmp / "random");
  const std::string name = L1 + "block_sparse_moe.experts.1.w3.weight";
  auto v = tensor_f32(tmp / "random", name);
  WeightSpec spec{name, WeightRole::kExpertUp, 1, 1, {192, 64}};
  for (uint64_t i : {0ull, 77ull, 12287ull}) EXPECT_EQ(v[i], random_init_value(c, spec, 3, i));
  s.rng_version = RngVersion::kV2;  // the same stream name and scale, normals of v2
  run(s, tmp / "random_v2");
  auto v2 = tensor_f32(tmp / "random_v2", name);
  const CounterRng rng(3, name, RngVersion::kV2);
  for (uint64_t i : {0ull, 77ull, 12287ull}) {
    EXPECT_EQ(v2[i], 0.0f + float(c.initializer_range) * rng.normal(i));
    EXPECT_NE(v2[i], v[i]);
  }
  s.expert_init = ExpertInit::kCopy;
  s.from_scratch = FromScratch::kYes;  // init's weights whatever the version (v2 is set)
  run(s, tmp / "scratch");
  WeightSpec q{L0 + "self_attn.q_proj.weight", WeightRole::kQProj, 0, -1, {64, 64}};
  EXPECT_EQ(tensor_f32(tmp / "scratch", q.name)[100], random_init_value(read_model_config(tmp / "scratch"), q, 3, 100));
}

TEST(Convert, SharedExpertFromShardsUngatedIsExactHalfGateCompensated) {
  ScratchDir tmp;
  auto dense = make_dense(tmp / "dense", Family::kQwen2, 8);
  ConvertSpec s;
  s.sources = {dense};
  s.experts = 4, s.top_k = 2, s.granularity = 2, s.shared_experts = 1;
  s.shared_gate = SharedGate::kUngated;
  run(s, tmp / "moe");
  ModelConfig c = table_ok(tmp / "moe");
  EXPECT_EQ(c.shared_expert_intermediate_size, 96);
  auto up = tensor_f32(dense, L0 + "mlp.up_proj.weight"), down = tensor_f32(dense, L0 + "mlp.down_proj.weight");
  auto su = tensor_f32(tmp / "moe", L0 + "mlp.shared_expert.up_proj.weight");
  auto sd = tensor_f32(tmp / "moe", L0 + "mlp.shared_expert.down_proj.weight");
  EXPECT_EQ(su, std::vector<float>(up.begin(), up.begin() + 96 * 64));  // shard 0
  EXPECT_EQ(sd[1 * 96 + 5], 2.0f * down[1 * 192 + 5]);
  for (float g : tensor_f32(tmp / "moe", L0 + "mlp.shared_expert_gate.weight")) EXPECT_EQ(g, 0.0f);
  // qwen2's biases are real; qwen2_moe keeps them.
  EXPECT_EQ(tensor_f32(tmp / "moe", L0 + "self_attn.k_proj.bias"), tensor_f32(dense, L0 + "self_attn.k_proj.bias"));
}

TEST(Convert, Qwen3GoesToQwen3MoeAndPreserves) {
  ScratchDir tmp;
  auto dense = make_dense(tmp / "dense", Family::kQwen3, 9);
  ConvertSpec s;
  s.sources = {dense};
  s.experts = 4, s.top_k = 2;
  auto r = run(s, tmp / "moe");
  EXPECT_EQ(table_ok(tmp / "moe").family, Family::kQwen3Moe);
  EXPECT_EQ(r.plan.preservation, Preservation::kExact);
  EXPECT_LT(verify_logits(dense, tmp / "moe"), 1e-5);
}

TEST(Convert, SeveralSourcesMapExpertsAndAverageNonFfn) {
  ScratchDir tmp;
  auto a = make_dense(tmp / "a", Family::kLlama, 10), b = make_dense(tmp / "b", Family::kLlama, 11);
  ConvertSpec s;
  s.sources = {a, b};
  s.experts = 4, s.top_k = 2;
  s.expert_source = {0, 0, 1, 1};
  s.expert_residual_scale = {1, 1, 1, 0.5};
  s.non_ffn = NonFfn::kAverage;
  auto r = run(s, tmp / "moe");
  EXPECT_EQ(r.plan.preservation, Preservation::kNo);
  table_ok(tmp / "moe");
  const std::string p = L0 + "block_sparse_moe.experts.";
  EXPECT_EQ(tensor_f32(tmp / "moe", p + "1.w1.weight"), tensor_f32(a, L0 + "mlp.gate_proj.weight"));
  EXPECT_EQ(tensor_f32(tmp / "moe", p + "2.w1.weight"), tensor_f32(b, L0 + "mlp.gate_proj.weight"));
  auto d3 = tensor_f32(tmp / "moe", p + "3.w2.weight"), bd = tensor_f32(b, L0 + "mlp.down_proj.weight");
  EXPECT_EQ(d3[17], 0.5f * bd[17]);
  auto ea = tensor_f32(a, "model.embed_tokens.weight"), eb = tensor_f32(b, "model.embed_tokens.weight");
  auto em = tensor_f32(tmp / "moe", "model.embed_tokens.weight");
  for (size_t i : {size_t(0), size_t(999), em.size() - 1}) EXPECT_FLOAT_EQ(em[i], (ea[i] + eb[i]) / 2);
}

TEST(Convert, DepthTilingRepeatsLayersInEitherOrder) {
  ScratchDir tmp;
  auto dense = make_dense(tmp / "dense", Family::kLlama, 12);
  ConvertSpec s;
  s.sources = {dense};
  s.depth_tile = 2;
  run(s, tmp / "tiled");
  EXPECT_EQ(table_ok(tmp / "tiled").num_hidden_layers, 4);
  const std::string q = ".self_attn.q_proj.weight";
  EXPECT_EQ(tensor_f32(tmp / "tiled", "model.layers.3" + q), tensor_f32(dense, "model.layers.1" + q));
  EXPECT_EQ(tensor_f32(tmp / "tiled", "model.layers.2" + q), tensor_f32(dense, "model.layers.0" + q));
  s.depth_order = DepthOrder::kStacked;
  run(s, tmp / "stacked");
  EXPECT_EQ(tensor_f32(tmp / "stacked", "model.layers.1" + q), tensor_f32(dense, "model.layers.0" + q));
  EXPECT_EQ(tensor_f32(tmp / "stacked", "model.layers.2" + q), tensor_f32(dense, "model.layers.1" + q));
}

std::string refusal(ConvertSpec s, const fs::path& out) {
  try {
    run(s, out);
  } catch (const Error& e) {
    EXPECT_FALSE(fs::exists(out)) << "no output after an error";
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

TEST(Convert, RefusalsNameTheProblemAndLeaveNoOutput) {
  ScratchDir tmp;
  auto llama = make_dense(tmp / "llama", Family::kLlama, 13);
  auto qwen2 = make_dense(tmp / "qwen2", Family::kQwen2, 14);
  auto other = make_dense(tmp / "other", Family::kLlama, 15, [](ModelConfig& c) { c.intermediate_size = 128; });
  const fs::path out = tmp / "out";
  auto base = [&](fs::path src) {
    ConvertSpec s;
    s.sources = {src};
    s.experts = 4, s.top_k = 2;
    return s;
  };
  struct Case {
    std::function<void(ConvertSpec&)> edit;
    std::string expect;
  };
  std::vector<Case> cases{
      {[](ConvertSpec& s) { s.experts = 3, s.granularity = 2; }, "multiple of --granularity"},
      {[](ConvertSpec& s) { s.granularity = 5; }, "must divide the dense intermediate_size 192"},
      {[](ConvertSpec& s) { s.top_k = 5; }, "must not exceed --experts 4"},
      {[](ConvertSpec& s) { s.moe_layers = "1", s.format = "mixtral"; }, "use --format qwen2_moe"},
      {[](ConvertSpec& s) { s.routing = RoutingOrder::kSoftmaxTopk, s.format = "mixtral"; }, "mixtral always renormalises"},
      {[](ConvertSpec& s) { s.format = "qwen3_moe"; }, "qwen3_moe needs per-head q_norm"},
      {[](ConvertSpec& s) { s.shared_experts = 1, s.format = "mixtral"; }, "mixtral has no shared experts"},
      {[&](ConvertSpec& s) { s.sources.push_back(other), s.expert_source = {0, 0, 1, 1}; }, "'intermediate_size'"},
      {[](ConvertSpec& s) { s.moe_layers = "every:0"; }, "--moe-layers"},
  };
  for (const auto& c : cases) {
    ConvertSpec s = base(llama);
    c.edit(s);
    EXPECT_NE(refusal(s, out).find(c.expect), std::string::npos) << c.expect;
  }
  ConvertSpec s = base(qwen2);
  s.format = "mixtral";
  EXPECT_NE(refusal(s, out).find("non-zero tensor model.layers.0.self_attn.q_proj.bias"), std::string::npos);
  run(base(llama), tmp / "moe");
  EXPECT_NE(refusal(base(tmp / "moe"), out).find("already an MoE model"), std::string::npos);
}

// Every canonical weight's bytes: the per-expert tensor itself, or its slice of a fused tensor.
std::map<std::string, std::vector<std::byte>> canonical_bytes(const fs::path& dir, ExpertLayout want) {
  ModelConfig c = read_model_config(dir);
  Checkpoint ckpt = Checkpoint::open(dir);
  std::map<std::string, Shape, std::less<>> shapes;
  for (const auto& [name, ref] : ckpt.tensors()) shapes[name] = ref.info->shape;
  const WeightTable table = WeightTable::build(c, shapes);
  EXPECT_TRUE(table.ok()) << dir << ": " << (table.problems().empty() ? "" : table.problems()[0]);
  EXPECT_EQ(table.layout(), want) << dir;
  std::map<std::string, std::vector<std::byte>> out;
  for (const auto& w : table.weights()) {
    const WeightLocation* at = table.locate(w.name);
    if (!at) continue;
    const TensorRef* ref = ckpt.find(at->tensor);
    const size_t es = dtype_size(ref->info->dtype), n = size_t(shape_numel(w.shape));
    auto data = ref->file->data(*ref->info).subspan(size_t(at->element_offset) * es, n * es);
    out[w.name].assign(data.begin(), data.end());
  }
  return out;
}

// --expert-layout fused writes the very values of the per-expert layout, copied experts (whole dense
// matrices into slices) and computed ones (drop) alike, and qwen2_moe without a shared expert gets
// transformers' zero-width shared-expert tensors in both layouts.
TEST(Convert, FusedLayoutHoldsThePerExpertValues) {
  ScratchDir tmp;
  auto dense = make_dense(tmp / "dense", Family::kLlama, 21);
  for (const char* format : {"mixtral", "qwen2_moe"}) {
    ConvertSpec s;
    s.sources = {dense};
    s.experts = 4, s.top_k = 2, s.format = format;
    if (std::string(format) == "qwen2_moe") s.expert_init = ExpertInit::kDrop, s.moe_layers = "1";
    const fs::path per = tmp / (std::string(format) + "-per"), fused = tmp / (std::string(format) + "-fused");
    run(s, per);
    convert(s, {fused, Overwrite::kRefuse, 5'000'000'000ull, ShowProgress::kNo, ExpertLayout::kFused});
    auto a = canonical_bytes(per, ExpertLayout::kPerExpert), b = canonical_bytes(fused, ExpertLayout::kFused);
    EXPECT_EQ(a.size(), expected_weights(read_model_config(per)).size()) << format;
    EXPECT_TRUE(a == b) << format << ": the layouts hold different values";
    Checkpoint f = Checkpoint::open(fused);
    EXPECT_NE(f.find(L1 + "mlp.experts.gate_up_proj"), nullptr) << format;
    if (std::string(format) == "mixtral") {
      EXPECT_NE(f.find(L1 + "mlp.gate.weight"), nullptr);
    }
    if (std::string(format) != "qwen2_moe") continue;
    for (const fs::path& dir : {per, fused}) {
      Checkpoint ckpt = Checkpoint::open(dir);
      const TensorRef* gate = ckpt.find(L1 + "mlp.shared_expert_gate.weight");
      ASSERT_NE(gate, nullptr) << dir;
      EXPECT_EQ(gate->info->shape, (Shape{1, 64}));
      EXPECT_EQ(ckpt.find(L1 + "mlp.shared_expert.down_proj.weight")->info->shape, (Shape{64, 0}));
      EXPECT_EQ(ckpt.find(L0 + "mlp.shared_expert_gate.weight"), nullptr) << "layer 0 is dense";
    }
  }
  ConvertSpec tile;
  tile.sources = {dense};
  tile.depth_tile = 2;
  try {
    convert(tile, {tmp / "deep", Overwrite::kRefuse, 5'000'000'000ull, ShowProgress::kNo, ExpertLayout::kFused});
    ADD_FAILURE() << "a dense output in the fused layout";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fused expert layout needs an MoE output"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(tmp / "deep"));
}

}  // namespace
}  // namespace upcycle::recipes
