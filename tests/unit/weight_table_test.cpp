// Weight tables: hand-listed tensor names and shapes for a tiny model of every family, fused-layout
// detection with the element offsets of each expert slice, every kind of problem, and parameter
// counts against the published sizes of released models (computed by hand in the comments).
#include "io/weight_table.h"

#include <gtest/gtest.h>

#include "io/model_config.h"
#include "support/hf_configs.h"

namespace upcycle {
namespace {

using DiskMap = std::map<std::string, Shape, std::less<>>;

// Tiny shapes: V 10, D 8, 2 heads, 1 kv head, head_dim 4 (unless set), F 12, expert F 3, shared F 5.
ModelConfig tiny(const char* model_type, Json extra = Json::object()) {
  Json j = {{"model_type", model_type}, {"vocab_size", 10},       {"hidden_size", 8},
            {"intermediate_size", 12},  {"num_hidden_layers", 1}, {"num_attention_heads", 2},
            {"num_key_value_heads", 1}};
  const std::string type = model_type;
  if (type == "mixtral") j.update({{"num_local_experts", 2}, {"num_experts_per_tok", 1}});
  if (type.ends_with("_moe")) j.update({{"num_experts", 2}, {"num_experts_per_tok", 1}, {"moe_intermediate_size", 3}});
  if (type == "qwen2_moe") j["shared_expert_intermediate_size"] = 5;
  j.update(extra);
  return parse_model_config(j, "config.json");
}

std::vector<std::string> listing(const std::vector<WeightSpec>& specs) {
  std::vector<std::string> out;
  for (const auto& w : specs) out.push_back(w.name + " " + shape_string(w.shape));
  return out;
}

DiskMap disk_map(const ModelConfig& c, ExpertLayout layout) {
  DiskMap m;
  for (auto& t : disk_tensors(c, layout)) m.emplace(t.name, t.shape);
  return m;
}

const std::string L0 = "model.layers.0.";
const std::string L1 = "model.layers.1.";

TEST(WeightTable, LlamaWithAttentionBias) {
  ModelConfig c = tiny("llama", {{"attention_bias", true}});
  EXPECT_EQ(listing(expected_weights(c)),
            (std::vector<std::string>{"model.embed_tokens.weight [10, 8]", L0 + "input_layernorm.weight [8]",
                                      L0 + "self_attn.q_proj.weight [8, 8]", L0 + "self_attn.k_proj.weight [4, 8]",
                                      L0 + "self_attn.v_proj.weight [4, 8]", L0 + "self_attn.o_proj.weight [8, 8]",
                                      L0 + "self_attn.q_proj.bias [8]", L0 + "self_attn.k_proj.bias [4]",
                                      L0 + "self_attn.v_proj.bias [4]", L0 + "self_attn.o_proj.bias [8]",
                                      L0 + "post_attention_layernorm.weight [8]", L0 + "mlp.gate_proj.weight [12, 8]",
                                      L0 + "mlp.up_proj.weight [12, 8]", L0 + "mlp.down_proj.weight [8, 12]",
                                      "model.norm.weight [8]", "lm_head.weight [10, 8]"}));
  auto specs = expected_weights(c);
  EXPECT_EQ(specs[0].role, WeightRole::kEmbed);
  EXPECT_EQ(specs[0].layer, -1);
  EXPECT_EQ(specs[2].role, WeightRole::kQProj);
  EXPECT_EQ(specs[2].layer, 0);
  EXPECT_EQ(specs[9].role, WeightRole::kOBias);
  EXPECT_EQ(specs.back().role, WeightRole::kLmHead);
  EXPECT_EQ(weight_role_name(WeightRole::kQProj), "q_proj");
  EXPECT_EQ(weight_role_name(WeightRole::kExpertGate), "expert.gate");
}

TEST(WeightTable, MistralTiedHasNoLmHeadNoBiases) {
  ModelConfig c = tiny("mistral", {{"tie_word_embeddings", true}});
  EXPECT_EQ(listing(expected_weights(c)),
            (std::vector<std::string>{"model.embed_tokens.weight [10, 8]", L0 + "input_layernorm.weight [8]",
                                      L0 + "self_attn.q_proj.weight [8, 8]", L0 + "self_attn.k_proj.weight [4, 8]",
                                      L0 + "self_attn.v_proj.weight [4, 8]", L0 + "self_attn.o_proj.weight [8, 8]",
                                      L0 + "post_attention_layernorm.weight [8]", L0 + "mlp.gate_proj.weight [12, 8]",
                                      L0 + "mlp.up_proj.weight [12, 8]", L0 + "mlp.down_proj.weight [8, 12]",
                                      "model.norm.weight [8]"}));
}

TEST(WeightTable, Qwen2QkvBiasOnly) {
  auto names = listing(expected_weights(tiny("qwen2")));
  std::vector<std::string> attention(names.begin() + 2, names.begin() + 9);
  EXPECT_EQ(attention,
            (std::vector<std::string>{L0 + "self_attn.q_proj.weight [8, 8]", L0 + "self_attn.k_proj.weight [4, 8]",
                                      L0 + "self_attn.v_proj.weight [4, 8]", L0 + "self_attn.o_proj.weight [8, 8]",
                                      L0 + "self_attn.q_proj.bias [8]", L0 + "self_attn.k_proj.bias [4]",
                                      L0 + "self_attn.v_proj.bias [4]"}));
  EXPECT_EQ(names[9], L0 + "post_attention_layernorm.weight [8]");
}

TEST(WeightTable, Qwen3HeadDimAndQkNorm) {
  auto names = listing(expected_weights(tiny("qwen3", {{"head_dim", 6}})));  // 6 != 8 / 2
  std::vector<std::string> attention(names.begin() + 2, names.begin() + 9);
  EXPECT_EQ(attention,
            (std::vector<std::string>{L0 + "self_attn.q_proj.weight [12, 8]", L0 + "self_attn.k_proj.weight [6, 8]",
                                      L0 + "self_attn.v_proj.weight [6, 8]", L0 + "self_attn.o_proj.weight [8, 12]",
                                      L0 + "self_attn.q_norm.weight [6]", L0 + "self_attn.k_norm.weight [6]",
                                      L0 + "post_attention_layernorm.weight [8]"}));
}

TEST(WeightTable, MixtralLegacyExpertNames) {
  ModelConfig c = tiny("mixtral");
  auto specs = expected_weights(c);
  auto names = listing(specs);
  std::vector<std::string> ffn(names.begin() + 7, names.end() - 2);
  const std::string m = L0 + "block_sparse_moe.";
  EXPECT_EQ(ffn, (std::vector<std::string>{m + "gate.weight [2, 8]", m + "experts.0.w1.weight [12, 8]",
                                           m + "experts.0.w3.weight [12, 8]", m + "experts.0.w2.weight [8, 12]",
                                           m + "experts.1.w1.weight [12, 8]", m + "experts.1.w3.weight [12, 8]",
                                           m + "experts.1.w2.weight [8, 12]"}));
  EXPECT_EQ(specs[7].role, WeightRole::kRouter);
  EXPECT_EQ(specs[8].role, WeightRole::kExpertGate);   // w1
  EXPECT_EQ(specs[9].role, WeightRole::kExpertUp);     // w3
  EXPECT_EQ(specs[10].role, WeightRole::kExpertDown);  // w2
  EXPECT_EQ(specs[11].expert, 1);
}

TEST(WeightTable, Qwen2MoeDenseAndSparseLayersWithSharedExpert) {
  ModelConfig c = tiny("qwen2_moe", {{"num_hidden_layers", 2}, {"decoder_sparse_step", 2}});
  auto names = listing(expected_weights(c));
  // Layer 0: (0+1) % 2 != 0 -> dense FFN of intermediate_size; layer 1 is MoE.
  EXPECT_EQ(names[9], L0 + "post_attention_layernorm.weight [8]");
  EXPECT_EQ(names[10], L0 + "mlp.gate_proj.weight [12, 8]");
  EXPECT_EQ(names[12], L0 + "mlp.down_proj.weight [8, 12]");
  std::vector<std::string> moe(names.begin() + 22, names.end() - 2);
  const std::string m = L1 + "mlp.";
  EXPECT_EQ(
      moe, (std::vector<std::string>{
               m + "gate.weight [2, 8]", m + "experts.0.gate_proj.weight [3, 8]", m + "experts.0.up_proj.weight [3, 8]",
               m + "experts.0.down_proj.weight [8, 3]", m + "experts.1.gate_proj.weight [3, 8]",
               m + "experts.1.up_proj.weight [3, 8]", m + "experts.1.down_proj.weight [8, 3]",
               m + "shared_expert.gate_proj.weight [5, 8]", m + "shared_expert.up_proj.weight [5, 8]",
               m + "shared_expert.down_proj.weight [8, 5]", m + "shared_expert_gate.weight [1, 8]"}));
  EXPECT_EQ(names[21], L1 + "post_attention_layernorm.weight [8]");
}

TEST(WeightTable, Qwen3MoeMlpOnlyLayers) {
  ModelConfig c = tiny("qwen3_moe", {{"num_hidden_layers", 2}, {"mlp_only_layers", {0}}});
  auto names = listing(expected_weights(c));
  EXPECT_EQ(names[9], L0 + "mlp.gate_proj.weight [12, 8]");
  // embed; layer 0: 8 attention-side + 3 FFN; layer 1: 8 + router + 2 experts * 3; norm, lm_head.
  EXPECT_EQ(names.size(), 1 + 11 + 15 + 2u);
  EXPECT_EQ(names[20], L1 + "mlp.gate.weight [2, 8]");
  EXPECT_EQ(names[21], L1 + "mlp.experts.0.gate_proj.weight [3, 8]");
}

TEST(WeightTable, PerExpertCheckpointMatches) {
  ModelConfig c = tiny("qwen2_moe");
  WeightTable t = WeightTable::build(c, disk_map(c, ExpertLayout::kPerExpert));
  EXPECT_TRUE(t.ok()) << t.problems()[0];
  EXPECT_EQ(t.layout(), ExpertLayout::kPerExpert);
  const WeightLocation* loc = t.locate(L0 + "mlp.experts.1.up_proj.weight");
  ASSERT_NE(loc, nullptr);
  EXPECT_EQ(loc->tensor, L0 + "mlp.experts.1.up_proj.weight");
  EXPECT_EQ(loc->element_offset, 0u);
  EXPECT_EQ(t.weights().size(), expected_weights(c).size());
  EXPECT_EQ(expert_layout_name(t.layout()), "per-expert");
  WeightTable dense = WeightTable::build(tiny("llama"), disk_map(tiny("llama"), ExpertLayout::kNone));
  EXPECT_TRUE(dense.ok());
  EXPECT_EQ(dense.layout(), ExpertLayout::kNone);
}

TEST(WeightTable, FusedLayoutOffsets) {
  ModelConfig c = tiny("qwen3_moe");  // E 2, expert F 3, D 8
  DiskMap fused = disk_map(c, ExpertLayout::kFused);
  EXPECT_EQ(fused.at(L0 + "mlp.experts.gate_up_proj"), (Shape{2, 6, 8}));
  EXPECT_EQ(fused.at(L0 + "mlp.experts.down_proj"), (Shape{2, 8, 3}));
  EXPECT_EQ(fused.at(L0 + "mlp.gate.weight"), (Shape{2, 8}));
  EXPECT_FALSE(fused.count(L0 + "mlp.experts.0.gate_proj.weight"));
  WeightTable t = WeightTable::build(c, fused);
  EXPECT_TRUE(t.ok());
  EXPECT_EQ(t.layout(), ExpertLayout::kFused);
  auto at = [&](const std::string& name) {
    const WeightLocation* loc = t.locate(L0 + name);
    EXPECT_NE(loc, nullptr) << name;
    return loc ? std::make_pair(loc->tensor.substr(L0.size()), loc->element_offset)
               : std::make_pair(std::string(), 0ul);
  };
  // gate of expert e at e*2F*D, up at e*2F*D + F*D (2F*D = 48, F*D = 24); down at e*D*F (24).
  EXPECT_EQ(at("mlp.experts.0.gate_proj.weight"), std::make_pair(std::string("mlp.experts.gate_up_proj"), 0ul));
  EXPECT_EQ(at("mlp.experts.0.up_proj.weight"), std::make_pair(std::string("mlp.experts.gate_up_proj"), 24ul));
  EXPECT_EQ(at("mlp.experts.1.gate_proj.weight"), std::make_pair(std::string("mlp.experts.gate_up_proj"), 48ul));
  EXPECT_EQ(at("mlp.experts.1.up_proj.weight"), std::make_pair(std::string("mlp.experts.gate_up_proj"), 72ul));
  EXPECT_EQ(at("mlp.experts.0.down_proj.weight"), std::make_pair(std::string("mlp.experts.down_proj"), 0ul));
  EXPECT_EQ(at("mlp.experts.1.down_proj.weight"), std::make_pair(std::string("mlp.experts.down_proj"), 24ul));
  EXPECT_EQ(at("mlp.gate.weight"), std::make_pair(std::string("mlp.gate.weight"), 0ul));
  EXPECT_EQ(at("self_attn.q_norm.weight"), std::make_pair(std::string("self_attn.q_norm.weight"), 0ul));
}

TEST(WeightTable, MixtralFusedRouterRename) {
  ModelConfig c = tiny("mixtral");  // F 12: gate_up [2, 24, 8]
  DiskMap fused = disk_map(c, ExpertLayout::kFused);
  EXPECT_TRUE(fused.count(L0 + "mlp.gate.weight"));
  EXPECT_FALSE(fused.count(L0 + "block_sparse_moe.gate.weight"));
  EXPECT_EQ(fused.at(L0 + "mlp.experts.gate_up_proj"), (Shape{2, 24, 8}));
  WeightTable t = WeightTable::build(c, fused);
  EXPECT_TRUE(t.ok());
  EXPECT_EQ(t.locate(L0 + "block_sparse_moe.gate.weight")->tensor, L0 + "mlp.gate.weight");
  EXPECT_EQ(t.locate(L0 + "block_sparse_moe.experts.1.w3.weight")->element_offset, 1u * 24 * 8 + 12 * 8);
  EXPECT_EQ(t.locate(L0 + "block_sparse_moe.experts.1.w2.weight")->element_offset, 1u * 8 * 12);
  // v5 renames the router for every Mixtral checkpoint, so per-expert experts + mlp.gate also load.
  DiskMap legacy = disk_map(c, ExpertLayout::kPerExpert);
  legacy.erase(L0 + "block_sparse_moe.gate.weight");
  legacy[L0 + "mlp.gate.weight"] = {2, 8};
  WeightTable renamed = WeightTable::build(c, legacy);
  EXPECT_TRUE(renamed.ok());
  EXPECT_EQ(renamed.locate(L0 + "block_sparse_moe.gate.weight")->tensor, L0 + "mlp.gate.weight");
  legacy[L0 + "block_sparse_moe.gate.weight"] = {2, 8};  // both spellings: one is left over
  EXPECT_EQ(WeightTable::build(c, legacy).problems(),
            std::vector<std::string>{"unexpected tensor " + L0 + "mlp.gate.weight"});
}

TEST(WeightTable, Problems) {
  ModelConfig c = tiny("qwen3_moe");
  DiskMap disk = disk_map(c, ExpertLayout::kPerExpert);
  DiskMap missing = disk;
  missing.erase("model.norm.weight");
  WeightTable t = WeightTable::build(c, missing);
  EXPECT_EQ(t.problems(), std::vector<std::string>{"missing tensor model.norm.weight"});
  EXPECT_FALSE(t.ok());
  EXPECT_EQ(t.locate("model.norm.weight"), nullptr);
  EXPECT_NE(t.locate("lm_head.weight"), nullptr);

  DiskMap extra = disk;
  extra["foo"] = {1};
  EXPECT_EQ(WeightTable::build(c, extra).problems(), std::vector<std::string>{"unexpected tensor foo"});

  DiskMap misshaped = disk;
  misshaped[L0 + "self_attn.q_proj.weight"] = {8, 4};
  WeightTable m = WeightTable::build(c, misshaped);
  EXPECT_EQ(m.problems(), std::vector<std::string>{L0 + "self_attn.q_proj.weight has shape [8, 4], expected [8, 8]"});
  EXPECT_EQ(m.locate(L0 + "self_attn.q_proj.weight"), nullptr);

  DiskMap mixed = disk;
  mixed[L0 + "mlp.experts.gate_up_proj"] = {2, 6, 8};
  WeightTable x = WeightTable::build(c, mixed);
  EXPECT_EQ(x.problems(),
            std::vector<std::string>{"checkpoint mixes per-expert and fused expert tensors (" + L0 +
                                     "mlp.experts.0.down_proj.weight, " + L0 + "mlp.experts.gate_up_proj)"});

  DiskMap fused = disk_map(c, ExpertLayout::kFused);
  fused.erase(L0 + "mlp.experts.down_proj");
  WeightTable f = WeightTable::build(c, fused);
  EXPECT_EQ(f.problems(), std::vector<std::string>{"missing tensor " + L0 + "mlp.experts.down_proj"});
  EXPECT_EQ(f.locate(L0 + "mlp.experts.0.down_proj.weight"), nullptr);
  EXPECT_NE(f.locate(L0 + "mlp.experts.0.gate_proj.weight"), nullptr);

  // A dense config with expert tensors on disk: each one is unexpected.
  DiskMap dense = disk_map(tiny("qwen3"), ExpertLayout::kNone);
  dense[L0 + "mlp.experts.0.gate_proj.weight"] = {3, 8};
  EXPECT_EQ(WeightTable::build(tiny("qwen3"), dense).problems(),
            std::vector<std::string>{"unexpected tensor " + L0 + "mlp.experts.0.gate_proj.weight"});
}

TEST(WeightTable, TensorsTransformersIgnores) {
  ModelConfig tied = tiny("llama", {{"tie_word_embeddings", true}});
  DiskMap disk = disk_map(tied, ExpertLayout::kNone);
  disk[L0 + "self_attn.rotary_emb.inv_freq"] = {2};
  disk["lm_head.weight"] = {10, 8};  // saved although tied
  EXPECT_TRUE(WeightTable::build(tied, disk).ok());
  disk["lm_head.weight"] = {10, 4};
  EXPECT_FALSE(WeightTable::build(tied, disk).ok());
  // qwen2_moe with shared_expert_intermediate_size 0 still has zero-width shared tensors in HF, which
  // transformers 5 reports missing when absent: writers declare them, readers accept files without.
  ModelConfig no_shared = tiny("qwen2_moe", {{"shared_expert_intermediate_size", 0}});
  DiskMap q = disk_map(no_shared, ExpertLayout::kPerExpert);
  EXPECT_EQ(q.at(L0 + "mlp.shared_expert.gate_proj.weight"), (Shape{0, 8}));
  EXPECT_EQ(q.at(L0 + "mlp.shared_expert.up_proj.weight"), (Shape{0, 8}));
  EXPECT_EQ(q.at(L0 + "mlp.shared_expert.down_proj.weight"), (Shape{8, 0}));
  EXPECT_EQ(q.at(L0 + "mlp.shared_expert_gate.weight"), (Shape{1, 8}));
  EXPECT_EQ(placeholder_tensors(no_shared).size(), 4u * size_t(no_shared.num_hidden_layers));
  EXPECT_TRUE(WeightTable::build(no_shared, q).ok());
  EXPECT_TRUE(WeightTable::build(no_shared, disk_map(no_shared, ExpertLayout::kFused)).ok());
  q[L0 + "mlp.shared_expert_gate.weight"] = {2, 8};
  EXPECT_FALSE(WeightTable::build(no_shared, q).ok());
  for (const auto& t : placeholder_tensors(no_shared)) q.erase(t.name);
  EXPECT_TRUE(WeightTable::build(no_shared, q).ok());
  EXPECT_TRUE(placeholder_tensors(tiny("qwen2_moe")).empty());
  EXPECT_TRUE(placeholder_tensors(tiny("qwen3_moe")).empty());
}

TEST(WeightTable, CountsMatchTheWeightList) {
  for (const ModelConfig& c :
       {tiny("llama", {{"attention_bias", true}}), tiny("mistral", {{"tie_word_embeddings", true}}), tiny("qwen2"),
        tiny("qwen3", {{"head_dim", 6}}), tiny("mixtral"),
        tiny("qwen2_moe", {{"num_hidden_layers", 2}, {"decoder_sparse_step", 2}}),
        tiny("qwen3_moe", {{"num_hidden_layers", 2}, {"mlp_only_layers", {0}}})}) {
    uint64_t total = 0;
    for (const auto& w : expected_weights(c)) total += shape_numel(w.shape);
    EXPECT_EQ(count_parameters(c).total, total) << family_model_type(c.family);
  }
  // Tied: the embedding counts once. V*D = 80; mistral tiny total = 80 + 8 (norm) + layer
  // (q 64 + k 32 + v 32 + o 64 + norms 16 + ffn 3*96) = 584.
  ParameterCounts tied = count_parameters(tiny("mistral", {{"tie_word_embeddings", true}}));
  EXPECT_EQ(tied.embedding, 80u);
  EXPECT_EQ(tied.total, 584u);
  EXPECT_EQ(tied.active, 584u);
}

ParameterCounts counts_of(const char* text) {
  return count_parameters(parse_model_config(parse_json(text, "config.json", "config.json"), "config.json"));
}

TEST(WeightTable, ReleasedModelSizes) {
  // Mixtral-8x7B (V 32000, D 4096, 32 layers, H 32, KV 8, S 128, F 14336, E 8, k 2):
  // embed + lm_head = 2 * 32000 * 4096 = 262,144,000; attention/layer = 2*4096*4096 + 2*4096*1024 = 41,943,040;
  // norms 8,192; router 32,768; one expert 3*4096*14336 = 176,160,768.
  // total = 262,144,000 + 4,096 + 32 * (41,943,040 + 8,192 + 32,768 + 8 * 176,160,768) = 46,702,792,704 (46.7B)
  // active = 262,144,000 + 4,096 + 32 * (41,943,040 + 8,192 + 32,768 + 2 * 176,160,768) = 12,879,925,248 (12.9B)
  ParameterCounts mixtral = counts_of(test::kMixtral8x7B);
  EXPECT_EQ(mixtral.total, 46'702'792'704u);
  EXPECT_EQ(mixtral.active, 12'879'925'248u);
  EXPECT_EQ(mixtral.embedding, 262'144'000u);
  // Llama-3.1-8B: 2 * 128256 * 4096 + 4096 + 32 * (41,943,040 + 8,192 + 176,160,768) = 8,030,261,248.
  ParameterCounts llama = counts_of(test::kLlama31_8B);
  EXPECT_EQ(llama.total, 8'030'261'248u);
  EXPECT_EQ(llama.active, llama.total);
  // Qwen2.5-7B (q/k/v biases 3584 + 2*512 per layer): 7,615,616,512.
  EXPECT_EQ(counts_of(test::kQwen25_7B).total, 7'615'616'512u);
  // Qwen3-8B (q/k norms 2*128 per layer): 8,190,735,360.
  EXPECT_EQ(counts_of(test::kQwen3_8B).total, 8'190'735'360u);
  // Qwen1.5-MoE-A2.7B: per layer attention 4*2048*2048 + biases 3*2048 + norms 2*2048 = 16,789,504;
  // router 60*2048; experts 60 * 3*2048*1408; shared 3*2048*5632 + gate 2048.
  // total 14,315,784,192 (14.3B); active (4 of 60 experts) 2,689,173,504 (2.7B).
  ParameterCounts qwen15 = counts_of(test::kQwen15MoeA27B);
  EXPECT_EQ(qwen15.total, 14'315'784'192u);
  EXPECT_EQ(qwen15.active, 2'689'173'504u);
  // Qwen3-30B-A3B: 30,532,122,624 total (30.5B), 3,353,032,704 active (3.3B).
  ParameterCounts qwen3moe = counts_of(test::kQwen3_30B_A3B);
  EXPECT_EQ(qwen3moe.total, 30'532'122'624u);
  EXPECT_EQ(qwen3moe.active, 3'353'032'704u);
  EXPECT_EQ(qwen3moe.embedding, 2u * 151936 * 2048);
}

}  // namespace
}  // namespace upcycle
