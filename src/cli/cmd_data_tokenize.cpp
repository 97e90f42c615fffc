// `upcycle data tokenize --tokenizer tokenizer.json --input FILES… --out DIR [--domain NAME]
// [--val-fraction F] [--shard-tokens N] [--eos auto|none] [--force]`: text files → a dataset directory
// (data/tokenize_corpus.h does the work). Every flag is checked, the tokenizer loaded and every input
// stat'ed before the output directory is staged; the directory appears complete or not at all.
#include <chrono>
#include <cmath>
#include <cstdio>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/units.h"
#include "data/tokenize_corpus.h"
#include "data/tokenizer.h"
#include "io/output_dir.h"

namespace upcycle::cli {
namespace {
namespace fs = std::filesystem;

struct DataTokenizeOptions {
  std::string tokenizer;
  std::vector<std::string> inputs;
  std::string out;
  std::string domain;
  double val_fraction = 0.0;
  uint64_t shard_tokens = data::kDefaultShardTokens;
  std::string eos = "auto";
  bool force = false;
};

void bind(OptionSet& set, DataTokenizeOptions& o) {
  set.add("tokenizer", "FILE", "HF tokenizer.json (or a model directory holding it; tokenizer_config.json beside it "
          "names the EOS token)", &o.tokenizer);
  set.add_list("input", "FILE", "text files, each one document (UTF-8); repeatable, order kept", &o.inputs);
  set.add("out", "DIR", "dataset directory to write (refused if it exists, unless --force)", &o.out);
  set.add("domain", "NAME", "domain name recorded in dataset.json [default: the --out directory's name]", &o.domain);
  set.add("val-fraction", "F", "fraction in [0, 1) of the token stream, taken from its end, for the val split",
          &o.val_fraction);
  set.add("shard-tokens", "N", "at most N tokens per shard file", &o.shard_tokens);
  set.add_choice("eos", {"auto", "none"},
                 "auto: follow every document by the tokenizer's EOS id (tokenizer_config.json's eos_token) when "
                 "it has one; none: plain concatenation",
                 &o.eos);
  set.add_flag("force", "replace an existing --out directory", &o.force);
  set.add_epilog(
      "Each input file is one document, encoded as HF tokenizers would encode it without special tokens\n"
      "(add_special_tokens=False; special-token text inside a document is still matched). Documents are\n"
      "concatenated in input order, each followed by the EOS id (--eos auto, when the tokenizer has one).\n"
      "The last ceil(F·N) tokens of that stream form the val split, the rest the train split (so the\n"
      "val split is the end of the last documents, not a random sample). Splits are cut into shards of\n"
      "at most --shard-tokens tokens: DIR/train-00000.bin…, DIR/val-00000.bin…, listed in DIR/dataset.json\n"
      "with the tokenizer's path and sha256, the input files and their sizes (docs/formats.md).\n"
      "Ids are stored as uint16 when the vocabulary has at most 65536 ids, else uint32.\n"
      "Documents are encoded in parallel (OMP_NUM_THREADS); the output does not depend on the thread count.");
  set.add_epilog(
      "example:\n"
      "  upcycle data tokenize --tokenizer llama3/tokenizer.json --input books/*.txt --out data/books \\\n"
      "      --val-fraction 0.01\n"
      "  upcycle data inspect data/books");
}

std::string shown_number(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", v);
  return text;
}

void validate(const OptionSet& set, const DataTokenizeOptions& o) {
  if (!set.given("tokenizer")) throw Error("missing --tokenizer (an HF tokenizer.json)");
  if (o.inputs.empty()) throw Error("missing --input (one or more text files)");
  if (o.out.empty()) throw Error("missing --out (the dataset directory to write)");
  if (!(o.val_fraction >= 0.0 && o.val_fraction < 1.0))
    throw Error("--val-fraction must lie in [0, 1) (got " + shown_number(o.val_fraction) + ")");
  if (o.shard_tokens < 1) throw Error("--shard-tokens must be at least 1");
  if (set.given("domain") && o.domain.empty()) throw Error("--domain must not be empty");
}

std::string default_domain(const std::string& out) {
  const fs::path p = fs::absolute(out).lexically_normal();
  return p.filename().empty() ? p.parent_path().filename().string() : p.filename().string();
}

}  // namespace

int run_data_tokenize(const Args& args) {
  DataTokenizeOptions o;
  OptionSet set("data tokenize",
                "upcycle data tokenize --tokenizer tokenizer.json --input FILES… --out DIR [--domain NAME] "
                "[--val-fraction F] [--shard-tokens N] [--eos auto|none] [--force]",
                "Encode text files with a Hugging Face tokenizer.json into a dataset directory of token shards\n"
                "(the input of upcycle train and upcycle eval --data).");
  bind(set, o);
  if (!set.parse(args)) return 0;
  validate(set, o);

  const data::Tokenizer tokenizer = data::Tokenizer::load(o.tokenizer);
  data::TokenizeSpec spec;
  for (const auto& input : o.inputs) spec.inputs.emplace_back(input);
  spec.domain = o.domain.empty() ? default_domain(o.out) : o.domain;
  spec.val_fraction = o.val_fraction;
  spec.shard_tokens = o.shard_tokens;
  if (o.eos == "auto") spec.eos = tokenizer.eos_id();
  data::input_sizes(spec.inputs);  // a missing input fails before the output is staged

  const auto start = std::chrono::steady_clock::now();
  StagedDir staged(o.out, o.force ? Overwrite::kReplace : Overwrite::kRefuse);
  data::TokenizeResult r;
  staged.write([&](const fs::path& dir) { r = data::tokenize_corpus(tokenizer, spec, dir); });
  staged.commit();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("wrote %s: domain %s, %llu train tokens in %zu shard%s, %llu val tokens in %zu shard%s "
              "(%s of text from %zu file%s in %.1fs, %.1f MB/s)\n",
              o.out.c_str(), spec.domain.c_str(), static_cast<unsigned long long>(r.train_tokens), r.train_shards,
              r.train_shards == 1 ? "" : "s", static_cast<unsigned long long>(r.val_tokens), r.val_shards,
              r.val_shards == 1 ? "" : "s", format_bytes(r.input_bytes).c_str(), spec.inputs.size(),
              spec.inputs.size() == 1 ? "" : "s", seconds, seconds > 0 ? double(r.input_bytes) / 1e6 / seconds : 0.0);
  if (o.eos == "auto" && !spec.eos)
    std::fprintf(stderr, "note: the tokenizer has no EOS token; documents were concatenated without a separator\n");
  return 0;
}

}  // namespace upcycle::cli
