// mergekit-moe YAML → MergekitMoeConfig → MoePlan (see mergekit_config.h). The writer-selection
// rules follow mergekit/scripts/moe.py select_output_arch and each writer's supports_config.
#include "recipes/mergekit_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <set>
#include <tuple>
#include <utility>

#include "core/error.h"

namespace upcycle::recipes {
namespace {

namespace fs = std::filesystem;

struct WriterInfo {
  MergekitArch arch;
  std::string_view name;  // mergekit's name(); `architecture:` is a case-insensitive prefix of it
};
constexpr std::array<WriterInfo, 4> kWriters = {{
    {MergekitArch::kMixtral, "Mixtral"},
    {MergekitArch::kDeepseek, "DeepSeek MoE"},
    {MergekitArch::kQwen, "Qwen MoE"},
    {MergekitArch::kQwen3, "Qwen3 MoE"},
}};
constexpr std::string_view kWeWrite =
    "upcycle writes mixtral (MixtralForCausalLM), qwen (Qwen2MoeForCausalLM) and qwen3 (Qwen3MoeForCausalLM)";

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool arch_matches(const std::optional<std::string>& architecture, std::string_view writer_name) {
  return !architecture || lower(writer_name).starts_with(lower(*architecture));
}

// Reads one YAML file; every error carries its path and the key being read.
class Reader {
 public:
  explicit Reader(fs::path file) : file_(std::move(file)) {}

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw Error(key.empty() ? what : key + ": " + what, file_.string());
  }

  std::string scalar(const YAML::Node& node, const std::string& key, std::string_view type) const {
    if (!node.IsScalar()) fail(key, "expected " + std::string(type));
    return node.Scalar();
  }
  std::string string(const YAML::Node& node, const std::string& key) const { return scalar(node, key, "a string"); }
  int64_t integer(const YAML::Node& node, const std::string& key) const {
    const std::string s = scalar(node, key, "an integer");
    int64_t v = 0;
    if (!YAML::convert<int64_t>::decode(node, v)) fail(key, "expected an integer, got '" + s + "'");
    return v;
  }
  double number(const YAML::Node& node, const std::string& key) const {
    const std::string s = scalar(node, key, "a number");
    double v = 0;
    if (!YAML::convert<double>::decode(node, v)) fail(key, "expected a number, got '" + s + "'");
    return v;
  }
  bool boolean(const YAML::Node& node, const std::string& key) const {
    const std::string s = scalar(node, key, "true or false");
    bool v = false;
    if (!YAML::convert<bool>::decode(node, v)) fail(key, "expected true or false, got '" + s + "'");
    return v;
  }
  std::vector<std::string> strings(const YAML::Node& node, const std::string& key) const {
    if (node.IsNull()) return {};
    if (!node.IsSequence()) fail(key, "expected a list of strings");
    std::vector<std::string> out;
    for (size_t i = 0; i < node.size(); ++i) out.push_back(string(node[i], key + "[" + std::to_string(i) + "]"));
    return out;
  }

  // Local model directory: relative paths are taken from the YAML file's directory.
  fs::path model_dir(const YAML::Node& node, const std::string& key) const {
    const std::string value = string(node, key);
    if (value.empty()) fail(key, "empty model path");
    fs::path p(value);
    if (p.is_relative()) p = (file_.has_parent_path() ? file_.parent_path() : fs::path(".")) / p;
    std::error_code ec;
    if (fs::is_directory(p, ec)) return fs::canonical(p);
    if (fs::exists(p, ec))
      fail(key, "'" + value + "' is a file; expected a model directory (config.json + safetensors)");
    if (value.find('+') != std::string::npos)
      fail(key, "'" + value +
                    "': not a local directory (LoRA references `model+lora` are not supported; merge the "
                    "adapter into the model and give that directory)");
    if (value.find('@') != std::string::npos)
      fail(key, "'" + value +
                    "': not a local directory (revisions `model@rev` are not supported; download that "
                    "revision to a local directory first)");
    const bool hub_like = std::count(value.begin(), value.end(), '/') == 1 && value[0] != '.' && value[0] != '/';
    fail(key, "'" + value + "': not a local directory (upcycle reads local checkpoints; download it first, e.g. with " +
                  "`huggingface-cli download " + (hub_like ? value : std::string("ORG/NAME")) + " --local-dir DIR`)");
  }

  void warn_unknown_keys(const YAML::Node& map, const std::set<std::string>& known, const std::string& prefix,
                         std::vector<std::string>& warnings) const {
    for (const auto& kv : map) {
      const std::string k = kv.first.as<std::string>();
      if (!known.contains(k))
        warnings.push_back(file_.string() + ": unknown key '" + prefix + k + "' ignored (mergekit ignores it too)");
    }
  }

  const fs::path& file() const { return file_; }

 private:
  fs::path file_;
};

MergekitExpert parse_expert(const Reader& r, const YAML::Node& node, const std::string& key,
                            std::vector<std::string>& warnings) {
  if (!node.IsMap()) r.fail(key, "expected a mapping with source_model and optional prompts");
  MergekitExpert e;
  if (!node["source_model"] || node["source_model"].IsNull()) r.fail(key + ".source_model", "missing (required)");
  e.source_model = r.string(node["source_model"], key + ".source_model");
  e.source_dir = r.model_dir(node["source_model"], key + ".source_model");
  if (node["positive_prompts"]) e.positive_prompts = r.strings(node["positive_prompts"], key + ".positive_prompts");
  if (node["negative_prompts"]) e.negative_prompts = r.strings(node["negative_prompts"], key + ".negative_prompts");
  for (auto [name, field] : {std::pair{"noise_scale", &e.noise_scale}, std::pair{"residual_scale", &e.residual_scale}})
    if (node[name] && !node[name].IsNull()) *field = r.number(node[name], key + "." + name);
  if (e.noise_scale && *e.noise_scale < 0) r.fail(key + ".noise_scale", "must be ≥ 0 (a standard deviation)");
  r.warn_unknown_keys(node, {"source_model", "positive_prompts", "negative_prompts", "noise_scale", "residual_scale"},
                      key + ".", warnings);
  return e;
}

std::vector<MergekitExpert> parse_experts(const Reader& r, const YAML::Node& node, const std::string& key,
                                          std::vector<std::string>& warnings) {
  if (!node || node.IsNull()) return {};
  if (!node.IsSequence()) r.fail(key, "expected a list of experts");
  std::vector<MergekitExpert> out;
  for (size_t i = 0; i < node.size(); ++i)
    out.push_back(parse_expert(r, node[i], key + "[" + std::to_string(i) + "]", warnings));
  return out;
}

void parse_enums(const Reader& r, const YAML::Node& root, MergekitMoeConfig& c) {
  if (root["gate_mode"] && !root["gate_mode"].IsNull()) {
    const std::string s = r.string(root["gate_mode"], "gate_mode");
    auto mode = gate_mode_from_name(s);
    if (!mode)
      r.fail("gate_mode", "unknown value '" + s +
                              "' (expected hidden, hidden_avg, hidden_last, cheap_embed, random "
                              "or uniform_random)");
    c.gate_mode = *mode;
  }
  if (root["dtype"] && !root["dtype"].IsNull()) {
    std::string s = r.string(root["dtype"], "dtype");
    if (s.starts_with("torch.")) s = s.substr(6);  // mergekit accepts torch.bfloat16 too
    if (s != "float32" && s != "float16" && s != "bfloat16")
      r.fail("dtype", "unknown value '" + s + "' (expected float32, float16 or bfloat16)");
    c.dtype = dtype_from_torch_name(s);
    UPCYCLE_CHECK(c.dtype.has_value(), "torch dtype names cover float32/float16/bfloat16");
  }
  if (root["architecture"] && !root["architecture"].IsNull()) {
    const std::string s = r.string(root["architecture"], "architecture");
    if (!s.empty()) c.architecture = s;  // mergekit treats an empty string as absent
  }
  if (c.architecture) {
    bool any = false, ours = false;
    for (const auto& w : kWriters)
      if (arch_matches(c.architecture, w.name)) any = true, ours = ours || w.arch != MergekitArch::kDeepseek;
    if (!any)
      r.fail("architecture", "'" + *c.architecture +
                                 "' names no mergekit output architecture (mixtral, deepseek, "
                                 "qwen, qwen3); " +
                                 std::string(kWeWrite));
    if (!ours)
      r.fail("architecture", "'" + *c.architecture + "': upcycle does not write DeepSeek MoE (a remote-code model); " +
                                 std::string(kWeWrite));
  }
}

// mergekit's is_bad_config, except that identical source models are fine (sparse upcycling is the point)
// and uniform_random, which never reads prompts, does not require them.
void validate(const Reader& r, const MergekitMoeConfig& c) {
  if (c.experts.empty()) r.fail("experts", "needs at least one expert");
  if (c.shared_experts.size() > 1)
    r.fail("shared_experts", "at most one shared expert is supported, got " + std::to_string(c.shared_experts.size()));
  if (c.experts_per_token < 1) r.fail("experts_per_token", "must be ≥ 1");
  if (c.experts_per_token > int64_t(c.experts.size()))
    r.fail("experts_per_token", std::to_string(c.experts_per_token) + " exceeds the number of experts (" +
                                    std::to_string(c.experts.size()) + ")");
  if (!gate_mode_uses_prompts(c.gate_mode)) return;
  for (size_t i = 0; i < c.experts.size(); ++i)
    if (c.experts[i].positive_prompts.empty())
      r.fail("experts[" + std::to_string(i) + "].positive_prompts",
             "gate_mode " + std::string(gate_mode_name(c.gate_mode)) +
                 " needs at least one positive prompt per expert (or use gate_mode: random)");
  auto same_prompts = [&](const MergekitExpert& e) {
    return e.positive_prompts == c.experts[0].positive_prompts && e.negative_prompts == c.experts[0].negative_prompts;
  };
  if (c.experts.size() > 1 && std::all_of(c.experts.begin() + 1, c.experts.end(), same_prompts))
    r.fail("experts",
           "every expert has the same positive and negative prompts, so the router could not tell them "
           "apart; give each expert prompts typical of what it should receive (or use gate_mode: random)");
}

// The parsed document; unreadable files and syntax errors are one-line errors naming the file.
YAML::Node load_yaml(const Reader& r, const fs::path& file) {
  try {
    return YAML::LoadFile(file.string());
  } catch (const YAML::BadFile&) {
    r.fail("", "cannot read the file");
  } catch (const YAML::Exception& e) {
    r.fail("", "invalid YAML at line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
}

}  // namespace

MergekitMoeConfig parse_mergekit_moe_yaml(const fs::path& file) {
  const Reader r(file);
  const YAML::Node root = load_yaml(r, file);
  if (!root.IsMap()) r.fail("", "expected a mergekit-moe config (a mapping with base_model and experts)");

  MergekitMoeConfig c;
  c.file = file;
  try {
    if (!root["base_model"] || root["base_model"].IsNull()) r.fail("base_model", "missing (required)");
    c.base_model = r.string(root["base_model"], "base_model");
    c.base_dir = r.model_dir(root["base_model"], "base_model");
    if (!root["experts"] || root["experts"].IsNull()) r.fail("experts", "missing (required)");
    c.experts = parse_experts(r, root["experts"], "experts", c.warnings);
    c.shared_experts = parse_experts(r, root["shared_experts"], "shared_experts", c.warnings);
    parse_enums(r, root, c);
    if (root["experts_per_token"]) c.experts_per_token = r.integer(root["experts_per_token"], "experts_per_token");
    if (root["average_non_ffn"] && !root["average_non_ffn"].IsNull())
      c.average_non_ffn = r.boolean(root["average_non_ffn"], "average_non_ffn");
    if (root["seed"] && !root["seed"].IsNull()) {
      const int64_t seed = r.integer(root["seed"], "seed");
      if (seed < 0) r.fail("seed", "must be ≥ 0");
      c.seed = uint64_t(seed);
    }
    r.warn_unknown_keys(root,
                        {"base_model", "experts", "gate_mode", "dtype", "experts_per_token", "shared_experts",
                         "architecture", "average_non_ffn", "seed"},
                        "", c.warnings);
  } catch (const YAML::Exception& e) {  // e.g. a non-scalar map key
    r.fail("", "unexpected structure at line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  validate(r, c);
  return c;
}

std::vector<PromptTexts> read_expert_prompts_yaml(const fs::path& file, std::vector<std::string>& warnings) {
  const Reader r(file);
  const YAML::Node root = load_yaml(r, file);
  std::vector<PromptTexts> out;
  try {
    if (!root.IsMap() || !root["experts"] || !root["experts"].IsSequence() || root["experts"].size() == 0)
      r.fail("experts", "expected a non-empty list of {positive_prompts, negative_prompts}, one per routed expert");
    const YAML::Node experts = root["experts"];
    for (size_t i = 0; i < experts.size(); ++i) {
      const std::string key = "experts[" + std::to_string(i) + "]";
      if (!experts[i].IsMap()) r.fail(key, "expected a mapping with positive_prompts");
      PromptTexts p;
      const YAML::Node& entry = experts[i];
      if (entry["positive_prompts"]) p.positive = r.strings(entry["positive_prompts"], key + ".positive_prompts");
      if (entry["negative_prompts"]) p.negative = r.strings(entry["negative_prompts"], key + ".negative_prompts");
      if (p.positive.empty()) r.fail(key + ".positive_prompts", "missing or empty (required)");
      r.warn_unknown_keys(experts[i], {"positive_prompts", "negative_prompts", "source_model"}, key + ".", warnings);
      out.push_back(std::move(p));
    }
  } catch (const YAML::Exception& e) {
    r.fail("", "unexpected structure at line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  return out;
}

namespace {

std::string source_key(const MergekitMoeConfig& c, size_t i) {
  if (i == 0) return "base_model";
  if (i <= c.experts.size()) return "experts[" + std::to_string(i - 1) + "].source_model";
  return "shared_experts[" + std::to_string(i - 1 - c.experts.size()) + "].source_model";
}

// mergekit requires one model_type across sources; the shapes an MoE shares must match too (and, when
// the non-FFN weights are averaged, every non-FFN shape). Tensor-level checks are the converter's.
void check_sources_agree(const MergekitMoeConfig& c, const std::vector<ModelConfig>& cfgs) {
  const ModelConfig& base = cfgs[0];
  for (size_t i = 1; i < cfgs.size(); ++i) {
    const ModelConfig& s = cfgs[i];
    auto fail = [&](const std::string& what) {
      throw Error(source_key(c, i) + ": " + what + " (all sources must share one architecture)", c.file.string());
    };
    if (s.family != base.family)
      fail("model_type '" + std::string(family_model_type(s.family)) + "' differs from base_model's '" +
           std::string(family_model_type(base.family)) + "'");
    std::vector<std::tuple<std::string_view, int64_t, int64_t>> fields = {
        {"hidden_size", s.hidden_size, base.hidden_size},
        {"num_hidden_layers", s.num_hidden_layers, base.num_hidden_layers},
        {"intermediate_size", s.intermediate_size, base.intermediate_size},
    };
    if (c.average_non_ffn) {
      fields.insert(fields.end(), {{"vocab_size", s.vocab_size, base.vocab_size},
                                   {"num_attention_heads", s.num_attention_heads, base.num_attention_heads},
                                   {"num_key_value_heads", s.num_key_value_heads, base.num_key_value_heads},
                                   {"head_dim", s.head_dim, base.head_dim},
                                   {"tie_word_embeddings", s.tie_word_embeddings, base.tie_word_embeddings}});
    }
    for (const auto& [name, mine, theirs] : fields)
      if (mine != theirs)
        fail(std::string(name) + " " + std::to_string(mine) + " differs from base_model's " + std::to_string(theirs));
  }
}

// Each writer's supports_config; nullopt when it accepts the config.
std::optional<std::string> unsupported_reason(MergekitArch arch, const MergekitMoeConfig& c, std::string_view type) {
  const auto& shared = c.shared_experts;
  const bool llama_like = type == "llama" || type == "mistral";
  switch (arch) {
    case MergekitArch::kMixtral:
      if (!shared.empty()) return "does not support shared experts";
      if (!llama_like) return "needs llama or mistral sources";
      return std::nullopt;
    case MergekitArch::kDeepseek:
      if (!shared.empty() && (!shared[0].positive_prompts.empty() || !shared[0].negative_prompts.empty()))
        return "does not gate shared experts";
      if (!llama_like) return "needs llama or mistral sources";
      return std::nullopt;
    case MergekitArch::kQwen:
      if (shared.size() != 1) return "needs exactly one shared expert";
      if (c.gate_mode != GateMode::kRandom && shared[0].positive_prompts.empty())
        return "needs positive_prompts on the shared expert unless gate_mode is random";
      if (!llama_like && type != "qwen2") return "needs llama, mistral or qwen2 sources";
      return std::nullopt;
    case MergekitArch::kQwen3:
      if (!shared.empty()) return "does not support shared experts";
      if (type != "qwen3") return "needs qwen3 sources";
      return std::nullopt;
  }
  UPCYCLE_CHECK(false, "unknown writer");
}

// mergekit's select_output_arch: filter by `architecture`, keep the writers that accept the config,
// prefer Mixtral "for compatibility", else the first in mergekit's order.
Family select_output_family(const MergekitMoeConfig& c, std::string_view type) {
  std::vector<MergekitArch> ok;
  std::string reasons;
  for (const auto& w : kWriters) {
    if (!arch_matches(c.architecture, w.name)) continue;
    if (auto why = unsupported_reason(w.arch, c, type))
      reasons += std::string(reasons.empty() ? "" : "; ") + std::string(w.name) + " " + *why;
    else
      ok.push_back(w.arch);
  }
  const std::string file = c.file.string();
  if (ok.empty())
    throw Error("no output architecture fits this config with " + std::string(type) + " sources: " + reasons, file);
  const MergekitArch pick =
      std::find(ok.begin(), ok.end(), MergekitArch::kMixtral) != ok.end() ? MergekitArch::kMixtral : ok.front();
  switch (pick) {
    case MergekitArch::kMixtral:
      return Family::kMixtral;
    case MergekitArch::kQwen:
      return Family::kQwen2Moe;
    case MergekitArch::kQwen3:
      return Family::kQwen3Moe;
    case MergekitArch::kDeepseek:
      break;
  }
  throw Error(
      "mergekit would write DeepSeek MoE for this config (an ungated shared expert), which upcycle does not "
      "write; " +
          std::string(kWeWrite) +
          ". For a Qwen MoE with a shared expert, give shared_experts[0] "
          "positive_prompts (or use gate_mode: random) and set architecture: qwen",
      file);
}

PlannedExpert plan_expert(const MergekitExpert& e, const std::vector<fs::path>& sources) {
  PlannedExpert p;
  p.source = size_t(std::find(sources.begin(), sources.end(), e.source_dir) - sources.begin());
  UPCYCLE_CHECK(p.source < sources.size(), "every expert's source is listed");
  p.noise_scale = e.noise_scale.value_or(0.0);
  p.residual_scale = e.residual_scale.value_or(1.0);
  p.positive_prompts = e.positive_prompts;
  p.negative_prompts = e.negative_prompts;
  return p;
}

}  // namespace

MoePlan plan_mergekit_moe(const MergekitMoeConfig& config, const std::vector<ModelConfig>& source_configs) {
  UPCYCLE_CHECK(source_configs.size() == 1 + config.experts.size() + config.shared_experts.size(),
                "one config per source reference");
  for (size_t i = 0; i < source_configs.size(); ++i)
    if (family_is_moe(source_configs[i].family))
      throw Error(source_key(config, i) + ": '" + std::string(family_model_type(source_configs[i].family)) +
                      "' is already an MoE model; mergekit-moe sources are dense models",
                  config.file.string());
  check_sources_agree(config, source_configs);

  MoePlan plan;
  plan.output_family = select_output_family(config, family_model_type(source_configs[0].family));
  plan.sources.push_back(config.base_dir);
  auto add_source = [&](const fs::path& dir) {
    if (std::find(plan.sources.begin(), plan.sources.end(), dir) == plan.sources.end()) plan.sources.push_back(dir);
  };
  for (const auto& e : config.experts) add_source(e.source_dir);
  for (const auto& e : config.shared_experts) add_source(e.source_dir);
  for (const auto& e : config.experts) plan.experts.push_back(plan_expert(e, plan.sources));
  if (!config.shared_experts.empty()) {
    const MergekitExpert& s = config.shared_experts[0];
    plan.shared_expert = plan_expert(s, plan.sources);
    plan.shared_expert_gate_from_init = !s.positive_prompts.empty() || !gate_mode_uses_prompts(config.gate_mode);
  }
  plan.top_k = config.experts_per_token;
  plan.dtype = config.dtype;
  plan.gate_mode = config.gate_mode;
  plan.non_ffn = config.average_non_ffn ? NonFfnSource::kAverageOfSources : NonFfnSource::kBaseModel;
  plan.seed = config.seed;
  return plan;
}

MoePlan plan_mergekit_moe(const MergekitMoeConfig& config) {
  std::vector<ModelConfig> configs;
  configs.push_back(read_model_config(config.base_dir));
  for (const auto& e : config.experts) configs.push_back(read_model_config(e.source_dir));
  for (const auto& e : config.shared_experts) configs.push_back(read_model_config(e.source_dir));
  return plan_mergekit_moe(config, configs);
}

}  // namespace upcycle::recipes
