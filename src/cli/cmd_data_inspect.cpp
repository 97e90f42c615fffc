// `upcycle data inspect DIR [--json] [--check-ids]`: one screen about a dataset directory — domain,
// vocab, id width, tokens and shards per split, tokenizer provenance, sources. Opening validates
// dataset.json and every shard header against it (token_dataset.h); --check-ids also scans every id.
// A problem is the usual one-line Error (exit 2), so inspect doubles as a validator.
#include <cstdio>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/units.h"
#include "data/token_dataset.h"

namespace upcycle::cli {
namespace {

struct DataInspectOptions {
  std::string dir;
  bool json = false;
  bool check_ids = false;
};

Json split_json(const data::TokenDataset& d) {
  Json shards = Json::array();
  for (const auto& s : d.shards)
    shards.push_back({{"file", s.info().path.filename().string()}, {"tokens", s.count()},
                      {"token_bytes", s.info().token_bytes}});
  return {{"tokens", d.tokens}, {"shards", shards}};
}

std::string split_line(const data::TokenDataset& d) {
  if (d.shards.empty()) return "none";
  uint64_t bytes = 0;
  for (const auto& s : d.shards) bytes += data::kShardHeaderBytes + s.count() * s.info().token_bytes;
  return std::to_string(d.tokens) + " tokens (" + format_count(d.tokens) + ") in " + std::to_string(d.shards.size()) +
         (d.shards.size() == 1 ? " shard, " : " shards, ") + format_bytes(bytes);
}

void print_text(const data::DatasetManifest& m, const data::TokenDataset& train, const data::TokenDataset& val,
                bool ids_checked) {
  const Json& j = m.json;
  std::printf("dataset %s\n", m.dir.string().c_str());
  std::printf("  domain      %s\n", m.domain.c_str());
  std::printf("  vocab size  %llu (%s ids)\n", static_cast<unsigned long long>(m.vocab_size),
              m.vocab_size <= 65536 ? "uint16" : "uint32");
  std::printf("  train       %s\n", split_line(train).c_str());
  std::printf("  val         %s\n", split_line(val).c_str());
  if (j.contains("tokenizer") && j["tokenizer"].is_object()) {
    const Json& t = j["tokenizer"];
    std::string line = t.value("path", std::string("?"));
    if (t.contains("sha256") && t["sha256"].is_string()) line += "  sha256 " + t["sha256"].get<std::string>().substr(0, 16) + "…";
    std::printf("  tokenizer   %s\n", line.c_str());
    if (t.contains("eos_id") && t["eos_id"].is_number())
      std::printf("  eos         %s (id %lld) after every document\n", t.value("eos_token", std::string("?")).c_str(),
                  static_cast<long long>(t["eos_id"].get<int64_t>()));
    else
      std::printf("  eos         none (documents concatenated)\n");
  }
  if (j.contains("sources") && j["sources"].is_array()) {
    uint64_t bytes = 0;
    for (const Json& s : j["sources"])
      if (s.is_object() && s.contains("bytes") && s["bytes"].is_number_unsigned()) bytes += s["bytes"].get<uint64_t>();
    std::printf("  sources     %zu file%s, %s of text\n", j["sources"].size(), j["sources"].size() == 1 ? "" : "s",
                format_bytes(bytes).c_str());
  }
  std::printf("  ids         %s\n", ids_checked ? "every id checked < vocab size" : "not scanned (--check-ids scans them)");
}

}  // namespace

int run_data_inspect(const Args& args) {
  DataInspectOptions o;
  OptionSet set("data inspect", "upcycle data inspect DIR [--json] [--check-ids]",
                "Describe a dataset directory written by upcycle data tokenize and validate dataset.json and\n"
                "every shard header against it.");
  set.add_positional("DIR", "dataset directory (dataset.json + token shards)", &o.dir, Required::kYes);
  set.add_flag("json", "print one JSON object instead of text", &o.json);
  set.add_flag("check-ids", "also read every shard and check each id < vocab size (reads all the data)", &o.check_ids);
  set.add_epilog(
      "--json prints {\"dir\", \"domain\", \"vocab_size\", \"splits\": {\"train\"|\"val\": {\"tokens\", \"shards\":\n"
      "[{\"file\", \"tokens\", \"token_bytes\"}]}}, \"tokenizer\", \"sources\", \"ids_checked\"} (tokenizer and sources as\n"
      "recorded in dataset.json). Exit status 2 with a one-line error for any invalid file.");
  set.add_epilog("example:\n  upcycle data inspect data/books --check-ids");
  if (!set.parse(args)) return 0;

  const data::DatasetManifest m = data::read_dataset_manifest(o.dir);
  const data::TokenDataset train = data::open_split(m, data::Split::kTrain);
  const data::TokenDataset val = data::open_split(m, data::Split::kVal);
  if (o.check_ids) {
    train.check_ids(m.vocab_size);
    val.check_ids(m.vocab_size);
  }
  if (o.json) {
    Json j = {{"dir", o.dir},
              {"domain", m.domain},
              {"vocab_size", m.vocab_size},
              {"splits", {{"train", split_json(train)}, {"val", split_json(val)}}},
              {"tokenizer", m.json.contains("tokenizer") ? m.json["tokenizer"] : Json(nullptr)},
              {"sources", m.json.contains("sources") ? m.json["sources"] : Json(nullptr)},
              {"ids_checked", o.check_ids}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    print_text(m, train, val, o.check_ids);
  }
  return 0;
}

}  // namespace upcycle::cli
