// Checkpoint description and checks for `upcycle inspect` (see checkpoint_report.h).
#include "io/checkpoint_report.h"

#include <cstdio>
#include <map>
#include <sstream>

#include "core/units.h"
#include "io/checkpoint.h"
#include "io/model_config.h"
#include "io/weight_table.h"

namespace upcycle {
namespace {

Json rope_json(const RopeConfig& rope) {
  Json j = {{"type", rope.type}, {"theta", rope.theta}};
  if (rope.type == "linear" || rope.type == "llama3") j["factor"] = rope.factor;
  if (rope.type == "llama3") {
    j["low_freq_factor"] = rope.low_freq_factor;
    j["high_freq_factor"] = rope.high_freq_factor;
    j["original_max_position_embeddings"] = rope.original_max_position_embeddings;
  }
  return j;
}

// dots1: sigmoid scores, bias-corrected group-limited selection, an ungated shared expert.
Json deepseek_moe_json(const ModelConfig& c, const Json& moe_layers, const Json& dense_layers) {
  const bool renorm = c.topk_norm == TopkNorm::kRenormalize;
  char scale[64];
  std::snprintf(scale, sizeof scale, "%g", c.routed_scaling_factor);
  return {{"experts", c.num_experts},
          {"top_k", c.num_experts_per_tok},
          {"expert_intermediate_size", c.moe_intermediate_size},
          {"shared_expert_intermediate_size", c.shared_expert_intermediate_size},
          {"shared_expert_gate", "none"},
          {"moe_layers", moe_layers},
          {"dense_layers", dense_layers},
          {"router",
           {{"scores", "sigmoid (fp32)"},
            {"selection", "top-k of score + e_score_correction_bias in the best " + std::to_string(c.topk_group) +
                              " of " + std::to_string(c.n_group) + " groups"},
            {"renormalize_topk", renorm},
            {"routed_scaling_factor", c.routed_scaling_factor},
            {"semantics", std::string("sigmoid -> biased group-limited top-k -> ") +
                              (renorm ? "renormalise" : "weights not renormalised") + " -> x " + scale},
            {"aux_loss_coef", c.router_aux_loss_coef},
            {"jitter_noise", c.router_jitter_noise}}}};
}

Json moe_json(const ModelConfig& c) {
  if (!c.is_moe()) return nullptr;
  Json moe_layers = Json::array(), dense_layers = Json::array();
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) (c.is_moe_layer(i) ? moe_layers : dense_layers).push_back(i);
  bool renorm = c.topk_norm == TopkNorm::kRenormalize;
  if (c.router_scoring == RouterScoring::kSigmoid) return deepseek_moe_json(c, moe_layers, dense_layers);
  return {{"experts", c.num_experts},
          {"top_k", c.num_experts_per_tok},
          {"expert_intermediate_size", c.moe_intermediate_size},
          {"shared_expert_intermediate_size", c.shared_expert_intermediate_size},
          {"shared_expert_gate", c.shared_expert_intermediate_size > 0 ? "sigmoid" : "none"},
          {"moe_layers", moe_layers},
          {"dense_layers", dense_layers},
          {"router",
           {{"scores", "softmax (fp32)"},
            {"selection", "top-k"},
            {"renormalize_topk", renorm},
            {"semantics", renorm ? "softmax -> top-k -> renormalise (= top-k logits -> softmax)"
                                 : "softmax -> top-k, weights not renormalised (sum < 1)"},
            {"aux_loss_coef", c.router_aux_loss_coef},
            {"jitter_noise", c.router_jitter_noise}}}};
}

void check_dtypes(const Checkpoint& ckpt, Json& dtypes, Json& problems) {
  std::map<std::string, uint64_t> counts;
  for (const auto& [name, ref] : ckpt.tensors()) {
    ++counts[std::string(dtype_name(ref.info->dtype))];
    if (!dtype_is_float(ref.info->dtype))
      problems.push_back(name + " has dtype " + std::string(dtype_name(ref.info->dtype)) +
                         ", but model weights must be F32, F16 or BF16");
  }
  for (const auto& [name, n] : counts) dtypes[name] = n;
}

Json files_json(const Checkpoint& ckpt) {
  Json files = Json::array();
  for (const auto& shard : ckpt.shards())
    files.push_back({{"name", shard.path().filename().string()},
                     {"bytes", shard.file_size()},
                     {"tensors", shard.tensors().size()}});
  return files;
}

}  // namespace

Json inspect_checkpoint(const std::filesystem::path& dir, TensorListing listing) {
  ModelConfig c = read_model_config(dir);
  Checkpoint ckpt = Checkpoint::open(dir);
  std::map<std::string, Shape, std::less<>> shapes;
  for (const auto& [name, ref] : ckpt.tensors()) shapes[name] = ref.info->shape;
  WeightTable table = WeightTable::build(c, shapes);
  ParameterCounts params = count_parameters(c);

  Json problems = Json::array();
  for (const auto& p : table.problems()) problems.push_back(p);
  Json dtypes = Json::object();
  check_dtypes(ckpt, dtypes, problems);

  Json r;
  r["path"] = dir.string();
  r["family"] = family_model_type(c.family);
  r["architecture"] = family_architecture(c.family);
  r["layers"] = c.num_hidden_layers;
  r["hidden_size"] = c.hidden_size;
  r["intermediate_size"] = c.intermediate_size;
  r["vocab_size"] = c.vocab_size;
  r["attention"] = {{"heads", c.num_attention_heads},     {"kv_heads", c.num_key_value_heads},
                    {"head_dim", c.head_dim},             {"qkv_bias", c.qkv_bias},
                    {"o_bias", c.o_bias},                 {"qk_norm", c.qk_norm},
                    {"sliding_window", c.sliding_window ? Json(*c.sliding_window) : Json(nullptr)}};
  r["max_position_embeddings"] = c.max_position_embeddings;
  r["rms_norm_eps"] = c.rms_norm_eps;
  r["rope"] = rope_json(c.rope);
  r["tie_word_embeddings"] = c.tie_word_embeddings;
  r["config_dtype"] = dtype_torch_name(c.dtype);
  r["moe"] = moe_json(c);
  r["expert_layout"] = expert_layout_name(table.layout());
  r["parameters"] = {{"total", params.total},
                     {"active_per_token", params.active},
                     {"embedding", params.embedding},
                     {"non_embedding", params.total - params.embedding}};
  r["tensor_dtypes"] = dtypes;
  r["tensor_bytes"] = ckpt.total_tensor_bytes();
  r["sharded"] = ckpt.sharded();
  r["files"] = files_json(ckpt);
  if (listing == TensorListing::kInclude) {
    Json tensors = Json::array();
    for (const auto& [name, ref] : ckpt.tensors())
      tensors.push_back({{"name", name},
                         {"dtype", dtype_name(ref.info->dtype)},
                         {"shape", ref.info->shape},
                         {"file", ref.file->path().filename().string()}});
    r["tensors"] = tensors;
  }
  r["problems"] = problems;
  return r;
}

std::string render_report_text(const Json& r) {
  std::ostringstream s;
  auto row = [&](const char* key, const std::string& value) { s << "  " << key << std::string(16 - std::string(key).size(), ' ') << value << "\n"; };
  auto yes = [](const Json& b) { return b.get<bool>() ? std::string("yes") : std::string("no"); };
  auto count = [](const Json& n) { return format_count(n.get<uint64_t>()); };
  const Json& a = r["attention"];
  s << r["path"].get<std::string>() << "\n";
  row("family", r["family"].get<std::string>() + " (" + r["architecture"].get<std::string>() + ")");
  row("layers", std::to_string(r["layers"].get<int64_t>()));
  row("hidden size", std::to_string(r["hidden_size"].get<int64_t>()));
  row("attention", std::to_string(a["heads"].get<int64_t>()) + " heads, " + std::to_string(a["kv_heads"].get<int64_t>()) +
                       " kv heads, head_dim " + std::to_string(a["head_dim"].get<int64_t>()) + "; qkv bias " +
                       yes(a["qkv_bias"]) + ", o bias " + yes(a["o_bias"]) + ", qk norm " + yes(a["qk_norm"]) +
                       ", sliding window " + (a["sliding_window"].is_null() ? "none" : a["sliding_window"].dump()));
  std::string ffn = "SwiGLU, intermediate_size " + std::to_string(r["intermediate_size"].get<int64_t>());
  if (r["family"] == "mixtral")
    ffn += " (Mixtral: the expert width)";
  else if (!r["moe"].is_null())
    ffn += r["moe"]["dense_layers"].empty() ? " (unused: every layer is MoE)" : " (dense layers)";
  row("ffn", ffn);
  row("vocab", std::to_string(r["vocab_size"].get<int64_t>()) + ", tied embeddings " + yes(r["tie_word_embeddings"]));
  const Json& rope = r["rope"];
  std::string rope_text = rope["type"].get<std::string>() + ", theta " + rope["theta"].dump();
  if (rope.contains("factor")) rope_text += ", factor " + rope["factor"].dump();
  if (rope.contains("low_freq_factor"))
    rope_text += ", low/high freq factor " + rope["low_freq_factor"].dump() + "/" + rope["high_freq_factor"].dump() +
                 ", original context " + rope["original_max_position_embeddings"].dump();
  row("rope", rope_text);
  row("context", std::to_string(r["max_position_embeddings"].get<int64_t>()) + " positions, rms_norm_eps " +
                     r["rms_norm_eps"].dump());
  if (r["moe"].is_null()) {
    row("moe", "none (dense)");
  } else {
    const Json& m = r["moe"];
    row("moe", std::to_string(m["experts"].get<int64_t>()) + " experts, top-" + std::to_string(m["top_k"].get<int64_t>()) +
                   ", expert width " + std::to_string(m["expert_intermediate_size"].get<int64_t>()) +
                   (m["shared_expert_intermediate_size"].get<int64_t>() > 0
                        ? ", shared expert " + std::to_string(m["shared_expert_intermediate_size"].get<int64_t>()) +
                              (m["shared_expert_gate"] == "sigmoid" ? " (sigmoid-gated)" : " (ungated)")
                        : ", no shared expert"));
    row("moe layers", m["moe_layers"].dump() + (m["dense_layers"].empty() ? "" : "; dense " + m["dense_layers"].dump()));
    row("router", m["router"]["semantics"].get<std::string>() + "; aux loss coef " + m["router"]["aux_loss_coef"].dump());
    row("expert layout", r["expert_layout"].get<std::string>());
  }
  const Json& p = r["parameters"];
  row("parameters", count(p["total"]) + " total (" + count(p["non_embedding"]) + " non-embedding), " +
                        count(p["active_per_token"]) + " active per token");
  std::string dtypes;
  for (auto it = r["tensor_dtypes"].begin(); it != r["tensor_dtypes"].end(); ++it)
    dtypes += (dtypes.empty() ? "" : ", ") + it.key() + " x" + std::to_string(it.value().get<uint64_t>());
  row("dtypes", dtypes + "; config " + r["config_dtype"].get<std::string>());
  row("weights", format_bytes(r["tensor_bytes"].get<uint64_t>()) + " in " + std::to_string(r["files"].size()) +
                     (r["sharded"].get<bool>() ? " shards" : " file"));
  for (const auto& f : r["files"])
    s << "    " << f["name"].get<std::string>() << "  " << format_bytes(f["bytes"].get<uint64_t>()) << ", "
      << f["tensors"].get<uint64_t>() << " tensors\n";
  if (r.contains("tensors")) {
    s << "  tensors\n";
    for (const auto& t : r["tensors"])
      s << "    " << t["name"].get<std::string>() << "  " << t["dtype"].get<std::string>() << " " << t["shape"].dump()
        << "  " << t["file"].get<std::string>() << "\n";
  }
  if (r["problems"].empty()) {
    row("problems", "none");
  } else {
    row("problems", std::to_string(r["problems"].size()));
    for (const auto& p : r["problems"]) s << "    - " << p.get<std::string>() << "\n";
  }
  return s.str();
}

}  // namespace upcycle
