// tokenize_corpus: how the token stream is split and sharded, worked by hand for 100 tokens (the byte
// tokenizer: id = byte) — boundary inside a part (one part rewritten as two shards), on a part
// boundary (nothing rewritten), val spanning several parts, val fractions whose product is an integer
// up to rounding — and that the train+val concatenation is the documents' bytes in input order.
#include <gtest/gtest.h>

#include "core/json.h"
#include "data/token_dataset.h"
#include "data/tokenize_corpus.h"
#include "support/expect_error.h"
#include "support/test_support.h"
#include "support/tokenizer_test_support.h"

namespace upcycle::data {
namespace {
namespace fs = std::filesystem;

std::vector<uint64_t> shard_counts(const fs::path& dir, Split split) {
  std::vector<uint64_t> counts;
  const DatasetManifest m = read_dataset_manifest(dir);
  for (const auto& e : m.split(split)) counts.push_back(e.tokens);
  return counts;
}

TEST(TokenizeCorpus, SplitsAndShardsAsDocumented) {
  test::ScratchDir dir;
  test::write_byte_tokenizer(dir.path());
  const Tokenizer tok = Tokenizer::load(dir / "tokenizer.json");
  std::string all;
  TokenizeSpec spec;
  spec.domain = "d";
  spec.shard_tokens = 40;
  for (int i = 0; i < 4; ++i) {  // 4 documents of 25 bytes: 100 tokens
    const std::string doc = std::string(24, char('a' + i)) + "\n";
    spec.inputs.push_back(dir / ("doc" + std::to_string(i)));
    test::write_bytes(spec.inputs.back(), doc);
    all += doc;
  }
  struct Case {
    double fraction;
    std::vector<uint64_t> train, val;
  };
  const std::vector<Case> cases = {
      {0.1, {40, 40, 10}, {10}},  // boundary 90 inside part [80, 100)
      {0.2, {40, 40}, {20}},      // boundary 80 on a part boundary
      {0.55, {40, 5}, {35, 20}},  // val spans two parts; 0.55·100 rounds to 55, not 56
      {0.0, {40, 40, 20}, {}},
  };
  for (size_t k = 0; k < cases.size(); ++k) {
    SCOPED_TRACE(cases[k].fraction);
    const fs::path out = dir / ("out" + std::to_string(k));
    fs::create_directory(out);
    spec.val_fraction = cases[k].fraction;
    const TokenizeResult r = tokenize_corpus(tok, spec, out);
    EXPECT_EQ(r.input_bytes, 100u);
    EXPECT_EQ(shard_counts(out, Split::kTrain), cases[k].train);
    EXPECT_EQ(shard_counts(out, Split::kVal), cases[k].val);
    EXPECT_EQ(r.train_shards, cases[k].train.size());
    std::string stream;
    for (Split split : {Split::kTrain, Split::kVal}) {
      if (cases[k].val.empty() && split == Split::kVal) continue;
      const TokenDataset d = open_dataset(out, split);
      std::vector<int32_t> ids(d.tokens);
      d.read(0, d.tokens, ids.data());
      for (int32_t id : ids) stream += char(id);
    }
    EXPECT_EQ(stream, all);
    size_t files = 0;  // the shards and dataset.json, no leftover part or temp files
    for (const auto& e : fs::directory_iterator(out)) files += e.path().filename().string().find("part") == std::string::npos;
    EXPECT_EQ(files, std::distance(fs::directory_iterator(out), fs::directory_iterator()));
    EXPECT_EQ(files, cases[k].train.size() + cases[k].val.size() + 1);
  }
  // EOS after every document, and a fraction leaving no train token.
  spec.eos = 10;
  spec.val_fraction = 0;
  fs::create_directory(dir / "eos");
  EXPECT_EQ(tokenize_corpus(tok, spec, dir / "eos").train_tokens, 104u);
  TokenizeSpec one = spec;
  one.inputs = {spec.inputs[0]};
  one.val_fraction = 0.999;
  fs::create_directory(dir / "none");
  EXPECT_UPCYCLE_ERROR(tokenize_corpus(tok, one, dir / "none"), "leaves no train tokens", "");
}

}  // namespace
}  // namespace upcycle::data
