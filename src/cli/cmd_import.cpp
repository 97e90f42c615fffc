// `upcycle import GGUF OUT`: a llama.cpp GGUF file → an HF checkpoint directory (config.json,
// generation_config.json, safetensors, tokenizer.json + tokenizer_config.json) that transformers and
// every upcycle command load. Everything is checked before the first byte is written (metadata,
// tensor names, shapes and types, the tokenizer), the weights stream through the checkpoint writer
// one chunk at a time, and OUT appears atomically or not at all.
#include <algorithm>
#include <cstdio>
#include <map>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/file_util.h"
#include "core/units.h"
#include "data/gguf_tokenizer.h"
#include "io/gguf_import.h"
#include "io/output_dir.h"

namespace upcycle::cli {
namespace {

struct ImportOptions {
  std::string gguf;
  std::string out;
  std::string dtype = "f32";
  std::string max_shard_size = "5GB";
  bool skip_tokenizer = false;
  bool force = false;
};

// "Q4_1 ×210, F32 ×61, Q8_0 ×1": the file's tensor types by count, for the summary line.
std::string type_summary(const GgufFile& file) {
  std::map<std::string, int> counts;
  for (const auto& t : file.tensors()) ++counts[std::string(ggml_type_info(t.type).name)];
  std::string out;
  for (const auto& [name, n] : counts) out += (out.empty() ? "" : ", ") + name + " ×" + std::to_string(n);
  return out;
}

}  // namespace

int run_import(const Args& args) {
  ImportOptions o;
  OptionSet set("import", "upcycle import GGUF OUT [--dtype f32|bf16] [--max-shard-size SIZE] [--skip-tokenizer] [--force]",
                "Turn a llama.cpp GGUF file into a Hugging Face checkpoint directory: config.json,\n"
                "generation_config.json, safetensors weights, and tokenizer.json + tokenizer_config.json rebuilt\n"
                "from the file's tokenizer metadata. Architectures: llama (dense, or with experts → mixtral),\n"
                "qwen2, qwen3, qwen2moe, qwen3moe. Quantised weights are dequantised exactly as llama.cpp's\n"
                "reference code does (" + dequantizable_type_names() + "),\n"
                "llama.cpp's rotary row interleave of attn_q/attn_k is undone, stacked experts are split into\n"
                "HF's per-expert tensors, and a missing output.weight means tied embeddings. The import streams:\n"
                "memory holds a few MB of one tensor at a time, never the model. Anything the file says that the\n"
                "HF families cannot express (partial rotary, yarn scaling, other quant types, ...) is an error\n"
                "naming the key or tensor, and nothing is written.");
  set.add_positional("GGUF", "the .gguf file to read", &o.gguf, Required::kYes);
  set.add_positional("OUT", "output directory (must not exist unless --force)", &o.out, Required::kYes);
  set.add_choice("dtype", {"f32", "bf16"},
                 "dtype of the written weights: f32 keeps the dequantised values bit for bit; bf16 halves the size "
                 "and rounds them to nearest even",
                 &o.dtype);
  set.add("max-shard-size", "SIZE", "largest safetensors shard (5GB = 5e9 bytes, 2GiB = 2^31)", &o.max_shard_size);
  set.add_flag("skip-tokenizer", "write no tokenizer files (for tokenizers upcycle cannot rebuild, e.g. SentencePiece)",
               &o.skip_tokenizer);
  set.add_flag("force", "replace OUT if it exists", &o.force);
  set.add_epilog(
      "examples:\n"
      "  upcycle import SmolLM2-135M-Instruct.Q4_1.gguf /tmp/smollm2\n"
      "  upcycle import qwen3-moe.Q4_K_M.gguf /data/qwen3-moe --dtype bf16 --max-shard-size 2GB\n"
      "then: upcycle inspect /tmp/smollm2; upcycle generate /tmp/smollm2 --prompt \"Hello\" --max-new-tokens 20");
  if (!set.parse(args)) return 0;

  const GgufFile file = GgufFile::open(o.gguf);
  const GgufImportPlan plan = plan_gguf_import(file);
  ModelConfig config = plan.config;
  config.dtype = dtype_from_choice(o.dtype);
  std::optional<data::GgufTokenizerFiles> tokenizer;
  if (!o.skip_tokenizer) {
    if (!data::gguf_has_tokenizer(file))
      throw Error("the file has no tokenizer (no key 'tokenizer.ggml.model'); pass --skip-tokenizer to import the model alone",
                  file.path().string());
    tokenizer = data::gguf_tokenizer_files(file);
  }
  GgufWeightsOptions weights;
  weights.dtype = config.dtype;
  weights.max_shard_bytes = parse_byte_size(o.max_shard_size, "--max-shard-size");
  weights.metadata = {{"upcycle_import", "gguf=" + file.path().filename().string() + " architecture=" + plan.architecture}};

  StagedDir out(o.out, o.force ? Overwrite::kReplace : Overwrite::kRefuse);
  std::vector<std::string> files;
  out.write([&](const std::filesystem::path& dir) {
    write_model_config(dir, config);
    write_generation_config(dir, config);
    if (tokenizer) {
      write_text_file(dir / "tokenizer.json", tokenizer->tokenizer_json);
      write_text_file(dir / "tokenizer_config.json", tokenizer->tokenizer_config_json);
    }
    files = write_gguf_weights(file, plan, weights, dir);
  });
  out.commit();

  const auto counts = count_parameters(config);
  const size_t shards = std::count_if(files.begin(), files.end(), [](const std::string& f) { return f.ends_with(".safetensors"); });
  std::printf("wrote %s: %s from GGUF '%s' (%s), %s parameters as %s, %zu safetensors file%s%s\n",
              out.destination().c_str(), std::string(family_model_type(config.family)).c_str(), plan.architecture.c_str(),
              type_summary(file).c_str(), format_count(counts.total).c_str(), o.dtype.c_str(), shards,
              shards == 1 ? "" : "s", tokenizer ? ", tokenizer.json" : ", no tokenizer");
  return 0;
}

}  // namespace upcycle::cli
