// `upcycle init`: write a randomly initialised HF checkpoint of any supported family — the test and
// benchmark models every other command starts from. Shapes come from a preset, overridden by flags;
// the output directory appears atomically (config.json, generation_config.json, safetensors).

#include <algorithm>
#include <cstdio>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/runtime_flags.h"
#include "core/error.h"
#include "core/file_util.h"
#include "core/units.h"
#include "io/model_presets.h"
#include "io/output_dir.h"
#include "io/random_init.h"

namespace upcycle::cli {
namespace {

struct InitOptions {
  std::string out;
  std::string arch;
  std::string preset = "tiny";
  uint64_t seed = 0;
  std::string dtype = "bf16";
  // Shape overrides: 0 (or "preset") keeps the preset's value.
  int64_t vocab_size = 0, hidden_size = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, intermediate_size = 0;
  int64_t experts = 0, top_k = 0, moe_intermediate_size = 0, shared_expert_intermediate_size = -1;
  std::string tie_embeddings = "preset";
  std::string norm_topk_prob = "family";
  std::string expert_layout = "per-expert";
  std::string max_shard_size = "5GB";
  int64_t threads = 0;
  bool force = false;
};

std::string family_choices() { return supported_model_types(); }

void override_shapes(const InitOptions& o, ModelConfig& c, const OptionSet& set) {
  auto apply = [](int64_t value, int64_t& field) {
    if (value > 0) field = value;
  };
  apply(o.vocab_size, c.vocab_size);
  apply(o.hidden_size, c.hidden_size);
  apply(o.layers, c.num_hidden_layers);
  apply(o.heads, c.num_attention_heads);
  apply(o.kv_heads, c.num_key_value_heads);
  apply(o.intermediate_size, c.intermediate_size);
  if (o.head_dim > 0)
    c.head_dim = o.head_dim;
  else if (set.given("hidden-size") || set.given("heads"))
    c.head_dim = c.hidden_size / c.num_attention_heads;
  if (!c.is_moe()) {
    if (o.experts > 0 || o.top_k > 0 || o.moe_intermediate_size > 0 || o.shared_expert_intermediate_size >= 0)
      throw Error("--experts, --top-k and the expert sizes need an MoE family (mixtral, qwen2_moe, qwen3_moe, dots1); '" +
                  std::string(family_model_type(c.family)) + "' is dense");
    return;
  }
  apply(o.experts, c.num_experts);
  apply(o.top_k, c.num_experts_per_tok);
  if (c.family == Family::kMixtral) {
    // Mixtral's intermediate_size *is* the expert width.
    apply(o.moe_intermediate_size, c.intermediate_size);
    c.moe_intermediate_size = c.intermediate_size;
  } else {
    apply(o.moe_intermediate_size, c.moe_intermediate_size);
  }
  if (c.family == Family::kDots1) c.shared_expert_intermediate_size = c.moe_intermediate_size;  // n_shared_experts 1
  if (o.shared_expert_intermediate_size >= 0) {
    if (c.family != Family::kQwen2Moe && c.family != Family::kDots1 && o.shared_expert_intermediate_size > 0)
      throw Error("--shared-expert-intermediate-size needs --arch qwen2_moe or dots1 (the families with a shared expert)");
    c.shared_expert_intermediate_size = o.shared_expert_intermediate_size;
  }
  if (o.norm_topk_prob != "family") c.topk_norm = o.norm_topk_prob == "true" ? TopkNorm::kRenormalize : TopkNorm::kNone;
}

}  // namespace

int run_init(const Args& args) {
  InitOptions o;
  OptionSet set("init", "upcycle init --arch FAMILY [--preset NAME] [shape options] [--seed S] [--dtype D] OUT",
                "Write a randomly initialised Hugging Face checkpoint (config.json, generation_config.json,\n"
                "safetensors) that transformers loads. Weights follow HF's _init_weights: linear layers and\n"
                "embeddings ~ N(0, initializer_range^2), biases 0, norms 1. The same seed gives identical bytes\n"
                "whatever the thread count.");
  set.add_positional("OUT", "output directory (must not exist unless --force)", &o.out, Required::kYes);
  set.add_choice("arch", {"llama", "mistral", "qwen2", "qwen3", "mixtral", "qwen2_moe", "qwen3_moe", "dots1"},
                 "model family (HF model_type)", &o.arch);
  set.add_choice("preset", preset_names(), "model shape: tiny (tests) … 7b (benchmarks); see docs/formats.md", &o.preset);
  set.add("seed", "S", "random seed", &o.seed);
  set.add_choice("dtype", {"f32", "bf16", "f16"}, "dtype of the written weights (config torch_dtype)", &o.dtype);
  set.add("vocab-size", "N", "vocabulary size (0: preset)", &o.vocab_size);
  set.add("hidden-size", "D", "model width (0: preset)", &o.hidden_size);
  set.add("layers", "L", "number of decoder layers (0: preset)", &o.layers);
  set.add("heads", "H", "attention heads (0: preset)", &o.heads);
  set.add("kv-heads", "KV", "key/value heads, dividing --heads (0: preset)", &o.kv_heads);
  set.add("head-dim", "S", "head dimension (0: hidden-size / heads)", &o.head_dim);
  set.add("intermediate-size", "F", "dense FFN width; for mixtral the expert width (0: preset)", &o.intermediate_size);
  set.add("experts", "E", "routed experts per MoE layer (0: preset)", &o.experts);
  set.add("top-k", "K", "experts per token (0: preset)", &o.top_k);
  set.add("moe-intermediate-size", "F", "expert width (0: preset)", &o.moe_intermediate_size);
  set.add("shared-expert-intermediate-size", "F", "qwen2_moe shared expert width, 0 for none; dots1: a multiple of the expert width (-1: preset)",
          &o.shared_expert_intermediate_size);
  set.add_choice("tie-embeddings", {"preset", "true", "false"}, "share embed_tokens with lm_head", &o.tie_embeddings);
  set.add_choice("norm-topk-prob", {"family", "true", "false"},
                 "renormalise the top-k router probabilities (qwen MoE; mixtral always does)", &o.norm_topk_prob);
  set.add_choice("expert-layout", {"per-expert", "fused"},
                 "per-expert: legacy names every tool loads; fused: transformers-5 stacked gate_up_proj/down_proj",
                 &o.expert_layout);
  set.add("max-shard-size", "SIZE", "largest safetensors shard (5GB = 5e9 bytes, 2GiB = 2^31)", &o.max_shard_size);
  bind_threads_flag(set, &o.threads, "output does not depend on it");
  set.add_flag("force", "replace OUT if it exists", &o.force);
  set.add_epilog(
      "examples:\n"
      "  upcycle init --arch llama --preset tiny --seed 1 /tmp/tiny-llama\n"
      "  upcycle init --arch qwen2_moe --preset small --experts 16 --top-k 4 --dtype f32 /tmp/qmoe\n"
      "  upcycle init --arch mistral --preset 7b --max-shard-size 2GB /data/mistral-7b-random");
  if (!set.parse(args)) return 0;
  if (o.arch.empty()) throw Error("missing --arch (one of: " + family_choices() + ")");
  apply_threads(o.threads);

  Family family = *family_from_model_type(o.arch);
  ModelConfig config = preset_config(family, o.preset);
  override_shapes(o, config, set);
  if (o.tie_embeddings != "preset") config.tie_word_embeddings = o.tie_embeddings == "true";
  config.dtype = dtype_from_choice(o.dtype);
  validate_model_config(config, "command line");

  RandomInitOptions init;
  init.seed = o.seed;
  init.layout = o.expert_layout == "fused" ? ExpertLayout::kFused : ExpertLayout::kPerExpert;
  if (init.layout == ExpertLayout::kFused && !config.is_moe())
    throw Error("--expert-layout fused needs an MoE family; '" + o.arch + "' has no experts");
  init.max_shard_bytes = parse_byte_size(o.max_shard_size, "--max-shard-size");
  init.metadata = {{"upcycle_init", "arch=" + o.arch + " preset=" + o.preset + " seed=" + std::to_string(o.seed)}};

  StagedDir out(o.out, o.force ? Overwrite::kReplace : Overwrite::kRefuse);
  std::vector<std::string> files;
  out.write([&](const std::filesystem::path& dir) {
    write_model_config(dir, config);
    write_generation_config(dir, config);
    files = write_random_weights(config, init, dir);
  });
  out.commit();

  auto counts = count_parameters(config);
  size_t shards = std::count_if(files.begin(), files.end(), [](const std::string& f) { return f.ends_with(".safetensors"); });
  std::printf("wrote %s: %s %s, %s parameters (%s active per token), %zu safetensors file%s%s\n",
              out.destination().c_str(), o.arch.c_str(), o.preset.c_str(), format_count(counts.total).c_str(),
              format_count(counts.active).c_str(), shards, shards == 1 ? "" : "s", shards > 1 ? " + index" : "");
  return 0;
}

}  // namespace upcycle::cli
