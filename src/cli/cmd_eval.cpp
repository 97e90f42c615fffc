// `upcycle eval CKPT --data PATH [--split train|val] [--seq-len N] [--max-tokens N] [--batch N] [--json]`:
// mean token loss and perplexity of a checkpoint on token data cut into non-overlapping windows of
// seq_len+1 tokens (model/evaluate.h). PATH is a dataset directory (`upcycle data tokenize`; its val
// split by default), one token shard (recognised by its magic), or a raw little-endian uint32 file
// (anything else). The data is checked before any weight is read: a valid dataset/shard (or a raw size
// a multiple of 4), at least one whole window, every evaluated id < vocab_size (the first bad one is
// named with its file and position). Non-goals: several datasets per run (the trainer's --val does that).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>

#include "backend/backend.h"
#include "cli/commands.h"
#include "cli/eval_window_flags.h"
#include "cli/options.h"
#include "cli/runtime_flags.h"
#include "core/error.h"
#include "core/file_util.h"
#include "core/json.h"
#include "core/progress.h"
#include "io/model_config.h"
#include "data/token_dataset.h"
#include "data/token_shard.h"
#include "io/token_file.h"
#include "model/evaluate.h"
#include "model/load_model.h"

namespace upcycle::cli {
namespace {

struct EvalOptions {
  std::string checkpoint;
  std::string data;
  std::string split = "val";
  int64_t seq_len = 256;
  int64_t max_tokens = 0;
  int64_t batch = 4;
  bool json = false;
  std::string backend = "cpu";
  int64_t threads = 0;
};

void bind(OptionSet& set, EvalOptions& o) {
  set.add_positional("CKPT", "checkpoint directory (config.json + safetensors)", &o.checkpoint, Required::kYes);
  set.add("data", "PATH",
          "token data: a dataset directory (upcycle data tokenize), one token shard, or a raw file of "
          "little-endian uint32 ids without header",
          &o.data);
  bind_eval_window_flags(set, &o.split, &o.seq_len, &o.max_tokens, &o.batch,
                         "which split of a dataset directory to evaluate",
                         "evaluate at most N predicted tokens (the first N / seq-len windows); 0 = all");
  set.add_flag("json", "print one JSON object instead of text", &o.json);
  bind_runtime_flags(set, &o.backend, &o.threads);
  set.add_epilog(
      "--data is told apart by what it is: a directory is a dataset (dataset.json + shards; --split picks\n"
      "the split, val by default, read across its shards as one stream); a file starting with the shard\n"
      "magic \"UPCYTOK\\0\" is one token shard; any other file is raw little-endian uint32 ids (no header).\n"
      "Formats: docs/formats.md. The token stream is cut into non-overlapping windows of seq-len+1\n"
      "tokens: the first seq-len are the inputs, the same tokens shifted by one the targets; a trailing\n"
      "partial window is dropped.\n"
      "Loss is the mean cross-entropy (nats) over all predicted tokens; perplexity = exp(loss).\n"
      "--json prints {\"loss\", \"perplexity\", \"tokens\", \"sequences\", \"seq_len\", \"checkpoint\", \"data\"}, plus\n"
      "\"routing\" for MoE models: per MoE layer tokens_per_expert, load_fraction, dropped_fraction,\n"
      "router_entropy (nats), top1_probability and aux_loss (1 = perfect balance); for a dataset also \"split\".");
  set.add_epilog(
      "examples:\n  upcycle eval /tmp/tiny-llama --data data/books --seq-len 128 --json\n"
      "  upcycle eval /tmp/tiny-llama --data /tmp/val.u32 --seq-len 128");
}

void validate(const OptionSet& set, const EvalOptions& o) {
  if (!set.given("data")) throw Error("missing --data (a dataset directory, a token shard or a raw uint32 token file)");
  model::check_window_flags(o.seq_len, o.batch, o.max_tokens);
}

// The token stream --data names: a dataset split or one shard (as a one-shard dataset), or else a
// raw uint32 file (no dataset).
struct EvalData {
  std::optional<data::TokenDataset> dataset;
  std::string what;  // "val split", "token shard", "token file": for messages
  uint64_t tokens = 0;
};

bool has_shard_magic(const std::string& path) {
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  char magic[sizeof data::kShardMagic] = {};
  return fd.valid() && ::pread(fd.get(), magic, sizeof magic, 0) == ssize_t(sizeof magic) &&
         std::memcmp(magic, data::kShardMagic, sizeof magic) == 0;
}

EvalData open_eval_data(const OptionSet& set, const EvalOptions& o) {
  EvalData d;
  std::error_code ec;
  if (std::filesystem::is_directory(o.data, ec)) {
    const data::Split split = o.split == "train" ? data::Split::kTrain : data::Split::kVal;
    d.dataset = data::open_dataset(o.data, split);
    d.what = o.split + " split";
    d.tokens = d.dataset->tokens;
    return d;
  }
  if (set.given("split")) throw Error("--split applies to dataset directories only", o.data);
  if (has_shard_magic(o.data)) {
    data::TokenShard shard = data::TokenShard::open(o.data);
    d.dataset.emplace();
    d.dataset->vocab_size = shard.info().vocab_size;
    d.dataset->tokens = shard.count();
    d.dataset->starts = {0};
    d.dataset->shards.push_back(std::move(shard));
    d.what = "token shard";
    d.tokens = d.dataset->tokens;
    return d;
  }
  d.what = "token file";
  d.tokens = token_file_count(o.data);
  return d;
}

// The first `count` tokens, each checked < vocab_size (the first bad one named with file and position).
std::vector<int32_t> read_eval_tokens(const EvalData& d, const EvalOptions& o, uint64_t count, int64_t vocab_size) {
  if (!d.dataset) return read_token_file(o.data, count, vocab_size);
  std::vector<int32_t> tokens(static_cast<size_t>(count));
  d.dataset->read(0, count, tokens.data());
  for (uint64_t i = 0; i < count; ++i) {
    const uint32_t id = uint32_t(tokens[size_t(i)]);
    if (int64_t(id) >= vocab_size) {
      const auto [shard, position] = d.dataset->locate(i);
      throw Error("token id " + std::to_string(id) + " at position " + std::to_string(position) +
                      " is out of range: vocab_size is " + std::to_string(vocab_size),
                  d.dataset->shards[shard].info().path.string());
    }
  }
  return tokens;
}

}  // namespace

namespace {

// Per MoE layer: load per expert (counts and fractions of kept assignments), dropped fraction and the
// router's mean entropy, top-1 probability and aux loss (1 = perfect balance).
Json routing_json(const std::vector<model::LayerRoutingSummary>& routing) {
  Json layers = Json::array();
  for (const auto& l : routing) {
    int64_t kept = 0;
    for (int64_t n : l.tokens_per_expert) kept += n;
    Json fractions = Json::array();
    for (int64_t n : l.tokens_per_expert) fractions.push_back(kept ? double(n) / double(kept) : 0.0);
    layers.push_back({{"layer", l.layer},
                      {"tokens_per_expert", l.tokens_per_expert},
                      {"load_fraction", fractions},
                      {"dropped_fraction", l.assignments ? double(l.dropped) / double(l.assignments) : 0.0},
                      {"router_entropy", l.router_entropy},
                      {"top1_probability", l.top1_probability},
                      {"aux_loss", l.aux_loss}});
  }
  return layers;
}

}  // namespace

int run_eval(const Args& args) {
  EvalOptions o;
  OptionSet set("eval",
                "upcycle eval CKPT --data PATH [--split val|train] [--seq-len N] [--max-tokens N] [--batch N] [--json] " +
                    runtime_flags_usage(),
                "Mean token loss and perplexity of the checkpoint on token data (a dataset directory, a token\n"
                "shard or a raw uint32 file).");
  bind(set, o);
  if (!set.parse(args)) return 0;
  validate(set, o);

  apply_threads(o.threads);
  ModelConfig config = read_model_config(o.checkpoint);
  const EvalData data = open_eval_data(set, o);
  const int64_t windows = model::count_windows(data.tokens, o.seq_len, o.max_tokens, data.what, o.data);
  const std::vector<int32_t> tokens =
      read_eval_tokens(data, o, uint64_t(windows * (o.seq_len + 1)), config.vocab_size);
  auto backend = backend::make_backend(backend::backend_kind_from_name(o.backend));
  auto transformer = model::load_transformer(config, o.checkpoint, *backend);

  Progress progress("eval", uint64_t(windows * o.seq_len), "tokens");
  const model::EvalResult r = model::evaluate_windows(*transformer, tokens, o.seq_len, o.batch, &progress);
  progress.finish();
  if (o.json) {
    Json j = {{"loss", r.loss},           {"perplexity", r.perplexity}, {"tokens", r.tokens},
              {"sequences", r.sequences}, {"seq_len", o.seq_len},       {"checkpoint", o.checkpoint},
              {"data", o.data}};
    if (data.what.ends_with("split")) j["split"] = o.split;
    if (!r.routing.empty()) j["routing"] = routing_json(r.routing);
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("loss %.6f  perplexity %.4f  (%lld tokens in %lld windows of %lld, %s backend)\n", r.loss, r.perplexity,
                static_cast<long long>(r.tokens), static_cast<long long>(r.sequences),
                static_cast<long long>(o.seq_len), o.backend.c_str());
    for (const auto& l : r.routing) {
      std::string load;
      for (int64_t n : l.tokens_per_expert) load += (load.empty() ? "" : " ") + std::to_string(n);
      std::printf("layer %lld routing: tokens per expert [%s], dropped %lld/%lld, entropy %.3f nats, top-1 p %.3f, aux %.3f\n",
                  static_cast<long long>(l.layer), load.c_str(), static_cast<long long>(l.dropped),
                  static_cast<long long>(l.assignments), l.router_entropy, l.top1_probability, l.aux_loss);
    }
  }
  return 0;
}

}  // namespace upcycle::cli
