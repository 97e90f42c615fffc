// Text files → dataset directory (see tokenize_corpus.h).
// The total token count, and so the train/val boundary, is known only at the end, so the stream is
// first written as "part" shards of exactly shard_tokens tokens; afterwards parts wholly before the
// boundary are renamed train-*.bin, parts after it val-*.bin, and the one part straddling it (if any)
// is read back and rewritten as two shards. Only that one part is ever rewritten.
#include "data/tokenize_corpus.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <exception>

#include "core/error.h"
#include "core/file_util.h"
#include "core/json.h"
#include "core/progress.h"
#include "core/sha256.h"
#include "data/token_dataset.h"
#include "data/token_shard.h"
#include "data/unicode_text.h"

namespace upcycle::data {
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kBatchBytes = uint64_t(8) << 20;  // documents read and encoded together
constexpr size_t kBatchDocuments = 256;

std::string shard_name(const char* prefix, size_t index) {
  char name[64];
  std::snprintf(name, sizeof name, "%s-%05zu.bin", prefix, index);
  return name;
}

// Collects the token stream into part shards of exactly shard_tokens tokens (the last may be shorter).
class PartWriter {
 public:
  PartWriter(fs::path dir, uint64_t vocab_size, uint64_t shard_tokens)
      : dir_(std::move(dir)), vocab_size_(vocab_size), shard_tokens_(shard_tokens) {}
  void push(uint32_t id) {
    buffer_.push_back(id);
    if (buffer_.size() == shard_tokens_) flush();
  }
  void flush() {
    if (buffer_.empty()) return;
    write_token_shard(dir_ / shard_name("part", counts_.size()), buffer_, vocab_size_);
    counts_.push_back(buffer_.size());
    buffer_.clear();
  }
  const std::vector<uint64_t>& counts() const { return counts_; }

 private:
  fs::path dir_;
  uint64_t vocab_size_, shard_tokens_;
  std::vector<uint32_t> buffer_;
  std::vector<uint64_t> counts_;
};

void rename_file(const fs::path& from, const fs::path& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) throw Error("cannot rename token shard: " + errno_text(errno), to.string());
}

// Writes tokens [begin, end) of the part shard `part` as a new shard.
void copy_part_range(const fs::path& part, uint64_t begin, uint64_t end, const fs::path& out, uint64_t vocab_size) {
  const TokenShard shard = TokenShard::open(part);
  std::vector<int32_t> ids(static_cast<size_t>(end - begin));
  shard.read(begin, end - begin, ids.data());
  const std::vector<uint32_t> u(ids.begin(), ids.end());
  write_token_shard(out, u, vocab_size);
}

// Turns the parts into train/val shards split at stream position `boundary`; returns the split lists.
Json split_parts(const fs::path& dir, const std::vector<uint64_t>& counts, uint64_t boundary, uint64_t vocab_size) {
  Json train = Json::array(), val = Json::array();
  const auto add = [&](Json& list, const char* prefix, uint64_t tokens) {
    const std::string name = shard_name(prefix, list.size());
    list.push_back({{"file", name}, {"tokens", tokens}});
    return dir / name;
  };
  uint64_t start = 0;
  for (size_t k = 0; k < counts.size(); ++k) {
    const fs::path part = dir / shard_name("part", k);
    const uint64_t end = start + counts[k];
    if (end <= boundary) {
      rename_file(part, add(train, "train", counts[k]));
    } else if (start >= boundary) {
      rename_file(part, add(val, "val", counts[k]));
    } else {
      copy_part_range(part, 0, boundary - start, add(train, "train", boundary - start), vocab_size);
      copy_part_range(part, boundary - start, counts[k], add(val, "val", end - boundary), vocab_size);
      if (::unlink(part.c_str()) != 0) throw Error("cannot remove token shard: " + errno_text(errno), part.string());
    }
    start = end;
  }
  return {{"train", train}, {"val", val}};
}

// Encodes docs[i] into ids[i] in parallel; the first failing document (in input order) is rethrown.
void encode_batch(const Tokenizer& tokenizer, const std::vector<std::string>& docs,
                  std::vector<std::vector<int32_t>>& ids) {
  ids.assign(docs.size(), {});
  std::vector<std::exception_ptr> errors(docs.size());
  const int64_t n = int64_t(docs.size());
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < n; ++i) {
    try {
      ids[size_t(i)] = tokenizer.encode(docs[size_t(i)], AddSpecial::kNo);
    } catch (...) {
      errors[size_t(i)] = std::current_exception();
    }
  }
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
}

std::string read_document(const fs::path& path) {
  std::string text = read_text_file(path, "input");
  if (auto bad = find_invalid_utf8(text))
    throw Error("input is not valid UTF-8 text (first bad byte at offset " + std::to_string(*bad) + ")", path.string());
  return text;
}

Json tokenizer_provenance(const Tokenizer& tokenizer, const std::optional<int32_t>& eos) {
  const fs::path file = fs::absolute(tokenizer.file()).lexically_normal();
  std::error_code ec;
  const uintmax_t bytes = fs::file_size(file, ec);
  return {{"path", file.string()},
          {"bytes", ec ? Json(nullptr) : Json(uint64_t(bytes))},
          {"sha256", sha256_file_hex(file, "tokenizer")},
          {"vocab_size", tokenizer.vocab_size()},
          {"eos_id", eos ? Json(*eos) : Json(nullptr)},
          {"eos_token", eos ? Json(tokenizer.id_to_token(*eos)) : Json(nullptr)}};
}

// ⌈F·N⌉, with products within rounding error of an integer taken as that integer (0.1·1000 → 100).
uint64_t val_token_count(double fraction, uint64_t total) {
  const double v = fraction * double(total);
  const double nearest = std::round(v);
  return uint64_t(std::fabs(v - nearest) <= 1e-9 * std::max(1.0, v) ? nearest : std::ceil(v));
}

}  // namespace

std::vector<uint64_t> input_sizes(const std::vector<fs::path>& inputs) {
  std::vector<uint64_t> sizes;
  for (const fs::path& path : inputs) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) throw Error("cannot read input: " + errno_text(errno), path.string());
    if (!S_ISREG(st.st_mode)) throw Error("input is not a regular file", path.string());
    sizes.push_back(uint64_t(st.st_size));
  }
  return sizes;
}

TokenizeResult tokenize_corpus(const Tokenizer& tokenizer, const TokenizeSpec& spec, const fs::path& out_dir) {
  UPCYCLE_CHECK(spec.val_fraction >= 0 && spec.val_fraction < 1 && spec.shard_tokens >= 1, "bad TokenizeSpec");
  const std::vector<uint64_t> sizes = input_sizes(spec.inputs);
  const uint64_t vocab_size = uint64_t(tokenizer.vocab_size());
  TokenizeResult result;
  for (uint64_t s : sizes) result.input_bytes += s;

  PartWriter parts(out_dir, vocab_size, spec.shard_tokens);
  Json sources = Json::array();
  Progress progress("tokenize", result.input_bytes, "bytes");
  std::vector<std::string> docs;
  std::vector<std::vector<int32_t>> ids;
  for (size_t first = 0; first < spec.inputs.size();) {
    docs.clear();
    uint64_t batch_bytes = 0;
    size_t end = first;
    while (end < spec.inputs.size() && docs.size() < kBatchDocuments && (docs.empty() || batch_bytes < kBatchBytes)) {
      docs.push_back(read_document(spec.inputs[end]));
      batch_bytes += docs.back().size();
      ++end;
    }
    encode_batch(tokenizer, docs, ids);
    for (size_t i = 0; i < docs.size(); ++i) {
      for (int32_t id : ids[i]) parts.push(uint32_t(id));
      if (spec.eos) parts.push(uint32_t(*spec.eos));
      const uint64_t tokens = ids[i].size() + (spec.eos ? 1 : 0);
      sources.push_back({{"path", fs::absolute(spec.inputs[first + i]).lexically_normal().string()},
                         {"bytes", docs[i].size()},
                         {"tokens", tokens}});
    }
    progress.advance(batch_bytes);
    first = end;
  }
  parts.flush();
  progress.finish();

  uint64_t total = 0;
  for (uint64_t c : parts.counts()) total += c;
  if (total == 0) throw Error("the inputs encode to no tokens (empty files and no EOS token)", spec.inputs.front().string());
  result.val_tokens = val_token_count(spec.val_fraction, total);
  result.train_tokens = total - std::min(result.val_tokens, total);
  if (result.train_tokens == 0)
    throw Error("--val-fraction " + std::to_string(spec.val_fraction) + " of " + std::to_string(total) +
                " tokens leaves no train tokens");
  const Json splits = split_parts(out_dir, parts.counts(), result.train_tokens, vocab_size);
  result.train_shards = splits["train"].size();
  result.val_shards = splits["val"].size();

  const Json dataset = {{"format", kDatasetFormat},
                        {"version", kDatasetVersion},
                        {"domain", spec.domain},
                        {"vocab_size", vocab_size},
                        {"tokens", {{"train", result.train_tokens}, {"val", result.val_tokens}}},
                        {"splits", splits},
                        {"tokenizer", tokenizer_provenance(tokenizer, spec.eos)},
                        {"eos", spec.eos ? "after every document" : "none"},
                        {"val_fraction", spec.val_fraction},
                        {"shard_tokens", spec.shard_tokens},
                        {"created_by", "upcycle data tokenize"},
                        {"sources", sources}};
  write_text_file(out_dir / kDatasetFile, dataset.dump(2) + "\n");
  return result;
}

}  // namespace upcycle::data
