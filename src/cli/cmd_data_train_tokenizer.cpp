// `upcycle data train-tokenizer --vocab-size N --input FILES… --out tokenizer.json [--pattern …]
// [--special-tokens A,B] [--min-frequency N] [--threads N] [--force]`: learn a byte-level BPE
// tokenizer (data/bpe_trainer.h) and write tokenizer.json plus tokenizer_config.json (EOS = first
// special token) beside it. Everything the user can get wrong (sizes, specials, inputs, the output's
// directory, an existing output without --force) is checked before the inputs are read; each file
// appears atomically (temp + fsync + rename) or not at all.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/file_util.h"
#include "core/progress.h"
#include "data/bpe_trainer.h"

namespace upcycle::cli {
namespace {
namespace fs = std::filesystem;

struct TrainTokenizerOptions {
  int64_t vocab_size = 0;
  std::vector<std::string> inputs;
  std::string out;
  std::string pattern = "llama3";
  std::string special_tokens = "<|endoftext|>";
  uint64_t min_frequency = 2;
  int64_t threads = 0;
  bool force = false;
};

void bind(OptionSet& set, TrainTokenizerOptions& o) {
  set.add("vocab-size", "N", "required: tokens in the result = 256 bytes + merged tokens + special tokens", &o.vocab_size);
  set.add_list("input", "FILE", "required: UTF-8 text files to learn from (each one a document)", &o.inputs);
  set.add("out", "FILE", "required: the tokenizer.json to write (a directory: DIR/tokenizer.json); "
          "tokenizer_config.json is written beside it", &o.out);
  set.add_choice("pattern", {"llama3", "gpt2", "qwen2"},
                 "pre-tokenizer regex: llama3 (digits in groups of ≤ 3, case-insensitive contractions), "
                 "gpt2, or qwen2 (Qwen2/2.5/3: single digits)",
                 &o.pattern);
  set.add("special-tokens", "A,B", "comma-separated special tokens, given ids after the BPE tokens in this order; "
          "the first is the EOS (none may contain a comma); \"\" for none", &o.special_tokens);
  set.add("min-frequency", "N", "stop early (fewer tokens than --vocab-size, reported) once the most frequent "
          "pair occurs fewer than N times", &o.min_frequency);
  set.add("threads", "N", "threads for pre-tokenizing (0: all cores); the result does not depend on it", &o.threads);
  set.add_flag("force", "replace an existing tokenizer.json / tokenizer_config.json", &o.force);
  set.add_epilog(
      "How it learns: each input file is split on the special tokens, then into pre-tokens by the\n"
      "--pattern regex (no normalizer), and the distinct pre-tokens are counted. Starting from the 256\n"
      "byte tokens, the most frequent adjacent pair (summed over all pre-tokens) is merged into a new\n"
      "token, again and again, until the vocab has N tokens. Equally frequent pairs: the one with the\n"
      "smaller (left id, right id) wins, so the same input gives a byte-identical tokenizer.json.\n"
      "Ids: 0–255 are the bytes in byte order, then merged tokens in merge order, then the specials.");
  set.add_epilog(
      "The output loads in Hugging Face tokenizers/transformers and in every upcycle command that takes\n"
      "a tokenizer. tokenizer_config.json names the first special token as eos_token, so\n"
      "`upcycle data tokenize` separates documents with it. A merge whose result is already a token\n"
      "(reached by another pair) adds no token, so merges can exceed N − 256 − specials (as in HF).");
  set.add_epilog(
      "examples:\n"
      "  upcycle data train-tokenizer --vocab-size 8192 --input corpus/*.txt --out tok/tokenizer.json\n"
      "  upcycle data train-tokenizer --vocab-size 4096 --input a.txt b.txt --out tok --pattern gpt2 \\\n"
      "      --special-tokens \"<|endoftext|>,<|pad|>\" --min-frequency 5");
}

std::vector<std::string> split_specials(const std::string& list) {
  std::vector<std::string> out;
  if (list.empty()) return out;
  size_t start = 0;
  for (;;) {
    const size_t comma = list.find(',', start);
    out.push_back(list.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

data::SplitPattern pattern_from_choice(const std::string& name) {
  for (auto p : {data::SplitPattern::kGpt2, data::SplitPattern::kLlama3, data::SplitPattern::kQwen2})
    if (data::split_pattern_name(p) == name) return p;
  UPCYCLE_CHECK(false, "add_choice let an unknown --pattern through");
  return data::SplitPattern::kLlama3;
}

// Refuses an output that exists (unless --force) or whose directory does not.
void check_output(const fs::path& file, bool force) {
  std::error_code ec;
  const fs::path dir = file.parent_path().empty() ? fs::path(".") : file.parent_path();
  if (!fs::is_directory(dir, ec)) throw Error("the output directory does not exist", dir.string());
  if (fs::is_directory(file, ec)) throw Error("the output is a directory", file.string());
  if (!force && fs::exists(file, ec)) throw Error("the output already exists (use --force to replace it)", file.string());
}

// Returns the inputs' total size; a missing, unreadable or non-regular input is an Error naming it.
uint64_t check_inputs(const std::vector<std::string>& inputs) {
  uint64_t total = 0;
  for (const std::string& in : inputs) {
    std::error_code ec;
    if (!fs::exists(in, ec)) throw Error("input file not found", in);
    if (!fs::is_regular_file(in, ec)) throw Error("input is not a regular file", in);
    if (::access(in.c_str(), R_OK) != 0) throw Error("cannot read input: " + errno_text(errno), in);
    total += fs::file_size(in, ec);
  }
  return total;
}


double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

int run_data_train_tokenizer(const Args& args) {
  TrainTokenizerOptions o;
  OptionSet set("data train-tokenizer",
                "upcycle data train-tokenizer --vocab-size N --input FILE… --out tokenizer.json [options]",
                "Learn a byte-level BPE tokenizer from text and write it as a Hugging Face tokenizer.json (for\n"
                "models trained from scratch). Same input and options, byte-identical output.");
  bind(set, o);
  if (!set.parse(args)) return 0;
  if (!set.given("vocab-size")) throw Error("missing --vocab-size (tokens in the result, e.g. --vocab-size 8192)");
  if (o.inputs.empty()) throw Error("missing --input (the text files to learn from)");
  if (o.out.empty()) throw Error("missing --out (the tokenizer.json to write)");
  if (o.threads < 0) throw Error("--threads must be ≥ 0 (0: all cores)");
  data::BpeTrainerOptions options;
  options.vocab_size = o.vocab_size;
  options.pattern = pattern_from_choice(o.pattern);
  options.special_tokens = split_specials(o.special_tokens);
  options.min_frequency = o.min_frequency;
  options.threads = int(o.threads);
  data::validate_options(options);

  std::error_code ec;
  const fs::path out = fs::is_directory(o.out, ec) ? fs::path(o.out) / "tokenizer.json" : fs::path(o.out);
  const fs::path config_out = (out.parent_path().empty() ? fs::path(".") : out.parent_path()) / "tokenizer_config.json";
  check_output(out, o.force);
  check_output(config_out, o.force);
  const uint64_t total_bytes = check_inputs(o.inputs);

  const auto start = std::chrono::steady_clock::now();
  data::BpeWordCounter counter(options);
  {
    Progress progress("counting pre-tokens", total_bytes, "bytes");
    for (const std::string& in : o.inputs) {
      const std::string text = read_text_file(in, "input");
      counter.add_document(text, in, [&](uint64_t bytes) { progress.advance(bytes); });
    }
    progress.finish();
  }
  const double count_seconds = seconds_since(start);
  const auto merge_start = std::chrono::steady_clock::now();
  data::BpeTrainResult result;
  {
    const int64_t base = 256 + int64_t(options.special_tokens.size());
    Progress progress("merging", uint64_t(options.vocab_size - base), "tokens");
    int64_t tokens_so_far = base;
    result = data::train_bpe(counter.counts(), options, [&](int64_t tokens) {
      progress.advance(uint64_t(tokens - tokens_so_far));
      tokens_so_far = tokens;
    });
    progress.finish();
  }
  const double merge_seconds = seconds_since(merge_start);
  write_text_file_atomically(out, "output", data::tokenizer_json(result, options.pattern));
  write_text_file_atomically(config_out, "output", data::tokenizer_config_json(result));

  const int64_t merged_tokens = result.vocab_size() - 256 - result.specials;
  std::printf("wrote %s (+ tokenizer_config.json): vocab %lld = 256 bytes + %lld merged + %lld special; %zu merges; "
              "pattern %s\n",
              out.string().c_str(), (long long)result.vocab_size(), (long long)merged_tokens,
              (long long)result.specials, result.merges.size(), o.pattern.c_str());
  if (result.specials)
    std::printf("eos: %s (id %lld)\n", options.special_tokens[0].c_str(), (long long)(result.vocab_size() - result.specials));
  std::printf("counted %llu pre-tokens (%zu distinct) in %.1f MB: %.2f s (%.1f MB/s); merges %.2f s\n",
              (unsigned long long)counter.pre_tokens(), counter.counts().size(), double(total_bytes) / 1e6,
              count_seconds, double(total_bytes) / 1e6 / std::max(count_seconds, 1e-9), merge_seconds);
  if (result.stopped_early)
    std::fprintf(stderr, "upcycle: note: stopped at %lld of the %lld tokens asked: no pair occurs ≥ %llu times "
                 "(more text or a lower --min-frequency gives more)\n",
                 (long long)result.vocab_size(), (long long)o.vocab_size, (unsigned long long)std::max<uint64_t>(o.min_frequency, 1));
  return 0;
}

}  // namespace upcycle::cli
