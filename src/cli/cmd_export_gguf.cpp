// `upcycle export gguf DIR OUT.gguf`: an HF checkpoint (any family llama.cpp runs the same way) → one
// GGUF file in llama.cpp's conventions (io/gguf_export.h), with the tokenizer metadata rebuilt from
// tokenizer.json (data/gguf_tokenizer.h). Everything is checked before writing; the weights stream
// from the shards chunk by chunk; the file appears atomically or not at all.
#include <cstdio>
#include <map>
#include <utility>
#include <vector>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/units.h"
#include "data/gguf_tokenizer.h"
#include "io/gguf_export.h"

namespace upcycle::cli {
namespace {

struct ExportGgufOptions {
  std::string checkpoint;
  std::string out;
  std::string type = "f32";
  bool skip_tokenizer = false;
  bool force = false;
};

// --type's choices, spelled as ggml_type_name prints them, lower case (llama.cpp writes "q4_K").
const std::vector<std::pair<std::string, GgmlType>>& type_choices() {
  static const std::vector<std::pair<std::string, GgmlType>> kChoices = {
      {"f32", GgmlType::kF32},   {"f16", GgmlType::kF16},   {"bf16", GgmlType::kBF16}, {"q8_0", GgmlType::kQ8_0},
      {"q6_k", GgmlType::kQ6_K}, {"q5_k", GgmlType::kQ5_K}, {"q4_k", GgmlType::kQ4_K}, {"q3_k", GgmlType::kQ3_K},
      {"q2_k", GgmlType::kQ2_K}, {"q5_1", GgmlType::kQ5_1}, {"q5_0", GgmlType::kQ5_0}, {"q4_1", GgmlType::kQ4_1},
      {"q4_0", GgmlType::kQ4_0}};
  return kChoices;
}

GgmlType type_from_choice(const std::string& t) {
  for (const auto& [name, type] : type_choices())
    if (name == t) return type;
  return GgmlType::kF32;  // add_choice has rejected anything else
}

std::vector<std::string> type_names() {
  std::vector<std::string> names;
  for (const auto& choice : type_choices()) names.push_back(choice.first);
  return names;
}

}  // namespace

int run_export_gguf(const Args& args) {
  ExportGgufOptions o;
  OptionSet set("export gguf", "upcycle export gguf CKPT OUT.gguf [--type f32|f16|bf16|q8_0|q6_k|q5_k|q4_k|...] [--skip-tokenizer] [--force]",
                "Write an HF checkpoint as a llama.cpp GGUF file, as llama.cpp's convert_hf_to_gguf.py would:\n"
                "llama.cpp's architecture and metadata keys, its tensor names, experts stacked into\n"
                "ffn_*_exps, q/k rows interleaved for its rotary kernel on llama files, the tokenizer from\n"
                "tokenizer.json. Families: llama and mistral (as llama), mixtral (llama with experts), qwen2,\n"
                "qwen3, qwen2_moe, qwen3_moe. Norms, biases and routers stay F32; other matrices take --type.\n"
                "A config llama.cpp would compute differently (sliding windows, llama3/yarn rope, routing it\n"
                "does not implement) is an error naming the key. `upcycle import` reads the file back.");
  set.add_positional("CKPT", "checkpoint directory (config.json + safetensors [+ tokenizer.json])", &o.checkpoint, Required::kYes);
  set.add_positional("OUT", "the .gguf file to write (must not exist unless --force)", &o.out, Required::kYes);
  set.add_choice("type", type_names(),
                 "type of the matrices, quantised bit for bit as llama.cpp's quantiser does without an\n"
                 "      importance matrix (llama-quantize --pure): q8_0 q5_1 q5_0 q4_1 q4_0 in 32-value blocks,\n"
                 "      k-quants q6_k q5_k q4_k q3_k q2_k in 256-value super-blocks. Rows that are not whole\n"
                 "      blocks take llama.cpp's fallback: q6_k→q8_0, q5_k→q5_1, q4_k→q5_0, q3_k/q2_k→q4_0,\n"
                 "      else f16 (SmolLM2's 576-wide rows fall back; its 1536-wide ffn_down keeps the k-quant)",
                 &o.type);
  set.add_flag("skip-tokenizer", "write no tokenizer metadata (llama.cpp then cannot load the file on its own)",
               &o.skip_tokenizer);
  set.add_flag("force", "replace OUT if it exists", &o.force);
  set.add_epilog(
      "examples:\n"
      "  upcycle export gguf /tmp/smollm2 /tmp/smollm2-f16.gguf --type f16\n"
      "  upcycle export gguf runs/moe/checkpoints/step-00001000 /tmp/moe.q8_0.gguf --type q8_0\n"
      "  upcycle export gguf runs/moe/checkpoints/step-00001000 /tmp/moe.q4_k.gguf --type q4_k");
  if (!set.parse(args)) return 0;
  const std::filesystem::path out = o.out;
  if (std::filesystem::exists(out) && !o.force)
    throw Error("the output file already exists; pass --force to replace it", out.string());

  const ModelConfig config = read_model_config(o.checkpoint);
  const GgufExportPlan plan =
      plan_gguf_export(config, type_from_choice(o.type), (std::filesystem::path(o.checkpoint) / "config.json").string());
  const Checkpoint checkpoint = Checkpoint::open(o.checkpoint);
  std::map<std::string, Shape, std::less<>> shapes;
  for (const auto& [name, ref] : checkpoint.tensors()) shapes[name] = ref.info->shape;
  const WeightTable table = WeightTable::build(config, shapes);
  if (!table.ok()) throw Error("the checkpoint does not match its config: " + table.problems().front(), o.checkpoint);

  GgufWriter writer;
  std::string name = std::filesystem::path(o.checkpoint).lexically_normal().filename().string();
  if (name.empty()) name = std::filesystem::path(o.checkpoint).lexically_normal().parent_path().filename().string();
  add_gguf_model_metadata(plan, name, writer);
  if (!o.skip_tokenizer) {
    if (!std::filesystem::exists(std::filesystem::path(o.checkpoint) / "tokenizer.json"))
      throw Error("no tokenizer.json beside the weights; pass --skip-tokenizer to export the model alone", o.checkpoint);
    data::add_gguf_tokenizer_metadata(o.checkpoint, config.vocab_size, writer);
  }
  declare_gguf_tensors(plan, writer);
  writer.write(out, [&](const GgufWriter::TensorSink& sink) { stream_gguf_tensors(plan, checkpoint, table, sink); });

  std::printf("wrote %s: GGUF '%s' from %s, %zu tensors (matrices %s), %s\n", out.c_str(), plan.architecture.c_str(),
              std::string(family_model_type(config.family)).c_str(), plan.tensors.size(), o.type.c_str(),
              o.skip_tokenizer ? "no tokenizer" : "tokenizer.ggml.*");
  return 0;
}

}  // namespace upcycle::cli
