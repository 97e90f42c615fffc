// `upcycle generate CKPT (--tokens "ids…" | --prompt TEXT) --max-new-tokens N [--temperature T]
// [--top-p P] [--seed S]`: continue a token sequence with the KV-cache decoder, greedy by default.
// With --tokens it prints the new ids on one stdout line; with --prompt the text is encoded by
// CKPT/tokenizer.json (data::Tokenizer, post_processor applied, e.g. Llama-3's BOS) and the decoded
// continuation is printed (--print-ids: the ids line instead). Throughput goes to stderr. Every
// input is validated before any weight is read: ids against vocab_size, N ≥ 1, T ≥ 0, P ∈ (0, 1].
// Non-goals: streaming output, top-k, chat templates.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>

#include "backend/backend.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "cli/runtime_flags.h"
#include "cli/token_args.h"
#include "core/error.h"
#include "data/tokenizer.h"
#include "io/model_config.h"
#include "model/generate.h"
#include "model/load_model.h"

namespace upcycle::cli {
namespace {

struct GenerateCliOptions {
  std::string checkpoint;
  std::string tokens;
  std::string prompt;
  bool print_ids = false;
  int64_t max_new_tokens = 0;
  double temperature = 0.0;
  double top_p = 1.0;
  uint64_t seed = 0;
  std::string backend = "cpu";
  int64_t threads = 0;
};

void bind(OptionSet& set, GenerateCliOptions& o) {
  set.add_positional("CKPT", "checkpoint directory (config.json + safetensors)", &o.checkpoint, Required::kYes);
  set.add("tokens", "IDS", "prompt token ids separated by spaces or commas, each in [0, vocab_size)", &o.tokens);
  set.add("prompt", "TEXT", "text prompt, encoded with CKPT/tokenizer.json; prints the decoded continuation", &o.prompt);
  set.add_flag("print-ids", "with --prompt: print the new token ids (as with --tokens) instead of the text", &o.print_ids);
  set.add("max-new-tokens", "N", "required: generate at most N tokens (≥ 1); stops earlier at an eos token", &o.max_new_tokens);
  set.add("temperature", "T", "0 = greedy (argmax); > 0 samples from softmax(logits / T)", &o.temperature);
  set.add("top-p", "P", "nucleus sampling: keep the most probable tokens up to mass P, in (0, 1]", &o.top_p);
  set.add("seed", "S", "seed of the sampling draws (same seed, same output)", &o.seed);
  bind_runtime_flags(set, &o.backend, &o.threads);
  set.add_epilog(
      "Generation stops after N tokens or after emitting an eos token (config.json eos_token_id: an\n"
      "integer or a list of integers; the eos token is printed). Sampling applies temperature, then\n"
      "top-p; draw k is CounterRng(seed, \"generate\").uniform(k), so output is reproducible.\n"
      "Defaults differ from transformers' generate(): upcycle is greedy unless --temperature > 0, never\n"
      "applies top-k (HF samples with top_k=50 by default) and ignores generation_config.json.");
  set.add_epilog(
      "--prompt reads CKPT/tokenizer.json (HF byte-level BPE: Llama-3, Qwen2/3, GPT-2 style) and encodes\n"
      "the text as HF's tokenizer(text) does, special tokens included (Llama-3 prepends <|begin_of_text|>;\n"
      "\"<|endoftext|>\" written in the text is that special token). The continuation is decoded as HF's\n"
      "decode(ids) does, special tokens kept, and printed followed by a newline.");
  set.add_epilog("examples:\n  upcycle generate /tmp/tiny-llama --tokens \"1 15 27\" --max-new-tokens 20 --temperature 0.8 "
                 "--top-p 0.9 --seed 7\n  upcycle generate ./Qwen3-0.6B --prompt \"The capital of France is\" --max-new-tokens 8");
}

void validate(const OptionSet& set, const GenerateCliOptions& o) {
  if (set.given("prompt") && set.given("tokens"))
    throw Error("--prompt and --tokens are mutually exclusive: give the prompt as text or as token ids");
  if (!set.given("tokens") && !set.given("prompt"))
    throw Error("missing --tokens or --prompt (prompt token ids, e.g. --tokens \"1 2 3\", or text)");
  if (o.print_ids && !set.given("prompt")) throw Error("--print-ids goes with --prompt (--tokens always prints ids)");
  if (!set.given("max-new-tokens")) throw Error("missing --max-new-tokens (how many tokens to generate)");
  if (o.max_new_tokens < 1)
    throw Error("--max-new-tokens must be at least 1 (got " + std::to_string(o.max_new_tokens) + ")");
  if (!(o.temperature >= 0.0) || !std::isfinite(o.temperature))
    throw Error("--temperature must be a finite number ≥ 0 (got " + std::to_string(o.temperature) + ")");
  if (!(o.top_p > 0.0 && o.top_p <= 1.0))
    throw Error("--top-p must lie in (0, 1] (got " + std::to_string(o.top_p) + ")");
  apply_threads(o.threads);
}

}  // namespace

int run_generate(const Args& args) {
  GenerateCliOptions o;
  OptionSet set("generate",
                "upcycle generate CKPT (--tokens \"ID ID ...\" | --prompt TEXT [--print-ids]) --max-new-tokens N "
                "[--temperature T] [--top-p P] [--seed S] " + runtime_flags_usage(),
                "Continue a prompt with the model (KV-cache decoding). With --tokens, print the generated ids,\n"
                "space-separated, on one line of stdout; with --prompt, print the generated text. tokens/s go\n"
                "to stderr. Greedy unless --temperature > 0.");
  bind(set, o);
  if (!set.parse(args)) return 0;
  validate(set, o);

  const std::string config_file = (std::filesystem::path(o.checkpoint) / "config.json").string();
  ModelConfig config = read_model_config(o.checkpoint);
  std::optional<data::Tokenizer> tokenizer;
  std::vector<int32_t> prompt;
  if (set.given("prompt")) {
    const auto tokenizer_file = std::filesystem::path(o.checkpoint) / "tokenizer.json";
    if (!std::filesystem::exists(tokenizer_file))
      throw Error("--prompt needs the checkpoint's tokenizer.json, which is missing (or pass ids with --tokens)",
                  tokenizer_file.string());
    tokenizer = data::Tokenizer::load(tokenizer_file);
    prompt = tokenizer->encode(o.prompt, data::AddSpecial::kYes);
    if (prompt.empty()) throw Error("--prompt encodes to no tokens: give a non-empty prompt");
    for (int32_t id : prompt)
      if (id >= config.vocab_size)
        throw Error("--prompt token id " + std::to_string(id) + " is out of range: the model's vocab_size is " +
                        std::to_string(config.vocab_size) + " (tokenizer.json does not belong to this model?)",
                    tokenizer_file.string());
  } else {
    prompt = parse_token_ids(o.tokens, config.vocab_size);
  }
  model::GenerateOptions gen;
  gen.max_new_tokens = o.max_new_tokens;
  gen.sampling = {o.temperature, o.top_p};
  gen.seed = o.seed;
  gen.eos_ids = model::eos_token_ids(config, config_file);
  auto backend = backend::make_backend(backend::backend_kind_from_name(o.backend));
  auto transformer = model::load_transformer(config, o.checkpoint, *backend);

  const auto start = std::chrono::steady_clock::now();
  const model::GenerateResult result = model::generate(*transformer, prompt, gen);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::string line;
  for (int32_t id : result.tokens) line += (line.empty() ? "" : " ") + std::to_string(id);
  if (tokenizer && !o.print_ids) line = tokenizer->decode(result.tokens);
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
  std::fprintf(stderr, "generated %zu tokens in %.3f s (%.1f tokens/s, %s backend, prompt of %zu tokens included)%s\n",
               result.tokens.size(), seconds, double(result.tokens.size()) / std::max(seconds, 1e-9),
               o.backend.c_str(), prompt.size(), result.stopped_at_eos ? "; stopped at eos" : "");
  return 0;
}

}  // namespace upcycle::cli
