// Dataset directories (see token_dataset.h): dataset.json is validated key by key so every problem is
// one Error naming the file, then the split's shards are opened and cross-checked against it.
#include "data/token_dataset.h"

#include <algorithm>
#include <limits>

#include "core/error.h"

namespace upcycle::data {
namespace fs = std::filesystem;

namespace {

uint64_t unsigned_field(const Json& j, const char* key, const std::string& where, const fs::path& file) {
  if (!j.contains(key)) throw Error(where + " has no \"" + key + "\"", file.string());
  const Json& v = j.at(key);
  if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
    throw Error(where + "'s \"" + key + "\" must be a non-negative integer (got " + v.dump() + ")", file.string());
  return v.get<uint64_t>();
}

bool plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

std::vector<DatasetManifest::Entry> parse_split(const Json& splits, const char* name, const fs::path& file) {
  std::vector<DatasetManifest::Entry> entries;
  if (!splits.contains(name) || splits.at(name).is_null()) return entries;
  const Json& list = splits.at(name);
  const std::string where = std::string("splits.") + name;
  if (!list.is_array()) throw Error(where + " must be a list of {\"file\", \"tokens\"} objects", file.string());
  for (size_t i = 0; i < list.size(); ++i) {
    const Json& e = list[i];
    const std::string at = where + "[" + std::to_string(i) + "]";
    if (!e.is_object()) throw Error(at + " must be an object {\"file\", \"tokens\"}", file.string());
    if (!e.contains("file") || !e.at("file").is_string()) throw Error(at + " has no \"file\" string", file.string());
    DatasetManifest::Entry entry{e.at("file").get<std::string>(), unsigned_field(e, "tokens", at, file)};
    if (!plain_file_name(entry.file))
      throw Error(at + "'s file \"" + entry.file + "\" must be a plain file name inside the dataset directory",
                  file.string());
    entries.push_back(std::move(entry));
  }
  return entries;
}

}  // namespace

const char* split_name(Split split) { return split == Split::kTrain ? "train" : "val"; }

DatasetManifest read_dataset_manifest(const fs::path& dir) {
  const fs::path file = dir / kDatasetFile;
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw Error("not a dataset directory (expected a directory holding dataset.json, written by 'upcycle data tokenize')",
                dir.string());
  DatasetManifest m;
  m.dir = dir;
  m.json = read_json_file(file, "dataset.json");
  const Json& j = m.json;
  if (!j.is_object()) throw Error("dataset.json must hold a JSON object", file.string());
  if (!j.contains("format") || j.at("format") != kDatasetFormat)
    throw Error(std::string("dataset.json's \"format\" must be \"") + kDatasetFormat + "\"", file.string());
  const uint64_t version = unsigned_field(j, "version", "dataset.json", file);
  if (version != uint64_t(kDatasetVersion))
    throw Error("unsupported dataset.json version " + std::to_string(version) + " (this upcycle reads version " +
                    std::to_string(kDatasetVersion) + ")",
                file.string());
  m.vocab_size = unsigned_field(j, "vocab_size", "dataset.json", file);
  if (m.vocab_size == 0) throw Error("dataset.json's \"vocab_size\" must be at least 1", file.string());
  if (j.contains("domain")) {
    if (!j.at("domain").is_string() || j.at("domain").get<std::string>().empty())
      throw Error("dataset.json's \"domain\" must be a non-empty string", file.string());
    m.domain = j.at("domain").get<std::string>();
  } else {
    m.domain = fs::absolute(dir).lexically_normal().filename().string();
    if (m.domain.empty()) m.domain = fs::absolute(dir).lexically_normal().parent_path().filename().string();
  }
  if (!j.contains("splits") || !j.at("splits").is_object())
    throw Error("dataset.json has no \"splits\" object", file.string());
  m.train = parse_split(j.at("splits"), "train", file);
  m.val = parse_split(j.at("splits"), "val", file);
  return m;
}

TokenDataset open_split(const DatasetManifest& m, Split split) {
  TokenDataset d;
  d.dir = m.dir;
  d.domain = m.domain;
  d.vocab_size = m.vocab_size;
  for (const auto& e : m.split(split)) {
    TokenShard shard = TokenShard::open(m.dir / e.file);
    if (shard.info().vocab_size != m.vocab_size)
      throw Error("shard's vocab size " + std::to_string(shard.info().vocab_size) + " differs from dataset.json's " +
                      std::to_string(m.vocab_size) + " (shards from different tokenizers?)",
                  shard.info().path.string());
    if (shard.count() != e.tokens)
      throw Error("shard holds " + std::to_string(shard.count()) + " tokens but dataset.json lists " +
                      std::to_string(e.tokens),
                  shard.info().path.string());
    d.starts.push_back(d.tokens);
    d.tokens += shard.count();
    d.shards.push_back(std::move(shard));
  }
  return d;
}

TokenDataset open_dataset(const fs::path& dir, Split split) {
  const DatasetManifest m = read_dataset_manifest(dir);
  uint64_t listed = 0;
  for (const auto& e : m.split(split)) listed += e.tokens;
  if (listed == 0)
    throw Error(std::string("dataset has no ") + split_name(split) + " split" +
                    (split == Split::kVal ? ": tokenize with --val-fraction" : ""),
                (dir / kDatasetFile).string());
  return open_split(m, split);
}

std::pair<size_t, uint64_t> TokenDataset::locate(uint64_t p) const {
  UPCYCLE_CHECK(p < tokens && starts.size() == shards.size(), "TokenDataset::locate beyond the split");
  // The last shard starting at or before p (empty shards share a start and are skipped this way).
  const size_t s = size_t(std::upper_bound(starts.begin(), starts.end(), p) - starts.begin()) - 1;
  return {s, p - starts[s]};
}

void TokenDataset::read(uint64_t begin, uint64_t n, int32_t* out) const {
  UPCYCLE_CHECK(begin <= tokens && n <= tokens - begin, "TokenDataset::read beyond the split");
  if (n == 0) return;
  auto [s, offset] = locate(begin);
  for (uint64_t done = 0; done < n; ++s, offset = 0) {
    const uint64_t m = std::min(n - done, shards[s].count() - offset);
    shards[s].read(offset, m, out + done);
    done += m;
  }
}

void TokenDataset::check_ids(uint64_t limit) const {
  for (const auto& shard : shards) shard.check_ids(limit);
}

}  // namespace upcycle::data
