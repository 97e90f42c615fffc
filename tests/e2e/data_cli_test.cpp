// `upcycle data tokenize`, `upcycle data inspect` and `upcycle eval --data` on datasets, end to end:
// shard ids equal the real HF tokenizers' ids (tests/reference/encode.py on the real Qwen3
// tokenizer.json) for the documents concatenated with EOS, split and sharded as documented; output does
// not depend on the thread count; bad inputs are one-line errors (exit 2) leaving no output behind;
// eval on a dataset directory or a shard gives the same loss as on the equivalent raw uint32 file.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "core/json.h"
#include "core/sha256.h"
#include "data/token_dataset.h"
#include "data/token_shard.h"
#include "support/hf_reference.h"
#include "support/test_support.h"
#include "support/tokenizer_test_support.h"

namespace upcycle {
namespace {
namespace fs = std::filesystem;

std::vector<int32_t> read_split(const fs::path& dir, data::Split split) {
  const data::TokenDataset d = data::open_dataset(dir, split);
  std::vector<int32_t> ids(d.tokens);
  d.read(0, d.tokens, ids.data());
  return ids;
}

std::string u32_bytes(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids)
    for (int b = 0; b < 4; ++b) s += char((uint32_t(id) >> (8 * b)) & 0xff);
  return s;
}

class DataCli : public ::testing::Test {
 protected:
  // Documents with unicode, whitespace runs, digits, code, special-token text and an empty file.
  std::vector<fs::path> write_documents() {
    const std::vector<std::string> docs = {
        "Hello world! Ünïcödé 日本語 😀👍🏽\n\n  spaces   and\ttabs\r\n",
        "def f(x):\n    return x + 12345  # code\n\n\tif x:\n\t\tpass\n",
        "",
        "<|endoftext|> special text inside, <|im_end|> e\u0301 vs \u00e9 and 3.14159   ",
    };
    std::vector<fs::path> files;
    for (size_t i = 0; i < docs.size(); ++i) {
      files.push_back(dir_ / ("doc" + std::to_string(i) + ".txt"));
      test::write_bytes(files.back(), docs[i]);
    }
    test::write_bytes(dir_ / "texts.json", Json(docs).dump());
    return files;
  }
  test::RunResult tokenize(const fs::path& tokenizer, const std::vector<fs::path>& inputs, const fs::path& out,
                           std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"data", "tokenize", "--tokenizer", tokenizer.string(), "--out", out.string(),
                                     "--input"};
    for (const auto& f : inputs) args.push_back(f.string());
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_upcycle(args);
  }
  // One line `upcycle: error: …` naming `needle`, exit 2, nothing on stdout, no output or staging dir.
  void expect_user_error(const test::RunResult& r, const std::string& needle, const fs::path& out) {
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(r.err.rfind("upcycle: error: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_FALSE(fs::exists(out)) << out;
    for (const auto& e : fs::directory_iterator(out.parent_path()))
      EXPECT_EQ(e.path().filename().string().find("." + out.filename().string()), std::string::npos) << e.path();
  }
  test::ScratchDir dir_;
};

TEST_F(DataCli, ShardsHoldTheHfReferenceIdsWithEos) {
  const std::vector<fs::path> docs = write_documents();
  struct Case {
    fs::path tokenizer_dir;
    int32_t eos;
    uint64_t vocab;
  };
  // Qwen3 (NFC normalizer, EOS <|im_end|> from tokenizer_config.json, ids > 65535 so uint32 shards);
  // one real file keeps the test short: tokenizer_parity_test covers Llama-3 id for id already.
  const std::vector<Case> cases = {{test::kQwen3Tokenizer, 151645, 151669}};
  for (const Case& c : cases) ASSERT_TRUE(fs::exists(c.tokenizer_dir / "tokenizer.json")) << "run scripts/setup";
  // Both reference runs start first and overlap with the upcycle runs.
  std::vector<std::unique_ptr<test::HfReference>> refs;
  for (const Case& c : cases) refs.push_back(std::make_unique<test::HfReference>(c.tokenizer_dir / "tokenizer.json", dir_ / "texts.json"));
  for (size_t k = 0; k < cases.size(); ++k) {
    const Case& c = cases[k];
    SCOPED_TRACE(c.tokenizer_dir.string());
    const fs::path out = dir_ / ("ds" + std::to_string(k));
    auto r = tokenize(c.tokenizer_dir, docs, out, {"--val-fraction", "0.25", "--shard-tokens", "8"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto reference = refs[k]->result();
    ASSERT_TRUE(reference.has_value()) << "tests/reference/encode.py failed; run scripts/setup";
    std::vector<int32_t> want;
    for (const auto& ids : (*reference)["ids"].get<std::vector<std::vector<int32_t>>>()) {
      want.insert(want.end(), ids.begin(), ids.end());
      want.push_back(c.eos);  // every document, the empty one included, is followed by EOS
    }
    std::vector<int32_t> got = read_split(out, data::Split::kTrain);
    const std::vector<int32_t> val = read_split(out, data::Split::kVal);
    EXPECT_EQ(val.size(), size_t(std::ceil(0.25 * double(want.size()))));  // the last ⌈F·N⌉ tokens
    got.insert(got.end(), val.begin(), val.end());
    EXPECT_EQ(got, want);

    const Json j = read_json_file(out / "dataset.json", "dataset");
    EXPECT_EQ(j["domain"], out.filename().string());
    EXPECT_EQ(j["vocab_size"], c.vocab);
    EXPECT_EQ(j["tokens"]["val"], val.size());
    EXPECT_EQ(j["tokenizer"]["sha256"], sha256_file_hex(c.tokenizer_dir / "tokenizer.json", "tokenizer"));
    EXPECT_EQ(j["tokenizer"]["eos_id"], c.eos);
    ASSERT_EQ(j["sources"].size(), docs.size());
    for (size_t i = 0; i < docs.size(); ++i) {
      EXPECT_EQ(j["sources"][i]["path"], docs[i].string());
      EXPECT_EQ(j["sources"][i]["bytes"], fs::file_size(docs[i]));
      EXPECT_EQ(j["sources"][i]["tokens"], (*reference)["ids"][i].size() + 1);
    }
    for (const char* split : {"train", "val"})
      for (const Json& shard : j["splits"][split]) {
        const data::TokenShard s = data::TokenShard::open(out / shard["file"].get<std::string>());
        EXPECT_LE(s.count(), 8u);
        EXPECT_EQ(s.info().token_bytes, 4u);
      }
  }
}

TEST_F(DataCli, EosNoneThreadsAndDomain) {
  test::write_byte_tokenizer(dir_.path());
  const std::vector<fs::path> docs = write_documents();
  auto r = tokenize(dir_ / "tokenizer.json", docs, dir_ / "plain", {"--domain", "code", "--eos", "none"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<int32_t> bytes;
  for (const auto& f : docs)
    for (unsigned char ch : test::read_bytes(f)) bytes.push_back(ch);  // the byte tokenizer: id = byte
  EXPECT_EQ(read_split(dir_ / "plain", data::Split::kTrain), bytes);
  EXPECT_EQ(data::open_dataset(dir_ / "plain", data::Split::kTrain).domain, "code");
  EXPECT_EQ(data::TokenShard::open(dir_ / "plain" / "train-00000.bin").info().token_bytes, 2u);  // vocab 256
  // The tokenizer has no EOS: --eos auto says so and concatenates.
  r = tokenize(dir_ / "tokenizer.json", docs, dir_ / "auto");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("no EOS token"), std::string::npos) << r.err;
  EXPECT_EQ(read_split(dir_ / "auto", data::Split::kTrain), bytes);

  // Many documents, one and two threads: identical files.
  std::vector<fs::path> many;
  for (int i = 0; i < 40; ++i) {
    many.push_back(dir_ / ("m" + std::to_string(i) + ".txt"));
    test::write_bytes(many.back(), std::string(size_t(1 + i * 37 % 101), char('a' + i % 26)) + " x\n");
  }
  const char* saved = std::getenv("OMP_NUM_THREADS");
  const std::string saved_value = saved ? saved : "";
  for (const char* threads : {"1", "2"}) {
    ::setenv("OMP_NUM_THREADS", threads, 1);
    r = tokenize(dir_ / "tokenizer.json", many, dir_ / (std::string("t") + threads),
                 {"--val-fraction", "0.3", "--shard-tokens", "100"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  saved ? ::setenv("OMP_NUM_THREADS", saved_value.c_str(), 1) : ::unsetenv("OMP_NUM_THREADS");
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir_ / "t1")) {
    std::string a = test::read_bytes(e.path()), b = test::read_bytes(dir_ / "t2" / e.path().filename());
    if (e.path().filename() == "dataset.json") {  // differs only in the domain, named after --out
      a.replace(a.find("\"t1\""), 4, "\"t2\"");
    }
    EXPECT_EQ(a, b) << e.path().filename();
    ++files;
  }
  EXPECT_GT(files, 4u);
}

TEST_F(DataCli, BadInputsAreOneLineErrorsWithoutOutput) {
  test::write_byte_tokenizer(dir_.path());
  const fs::path tok = dir_ / "tokenizer.json", out = dir_ / "out", good = dir_ / "good.txt";
  test::write_bytes(good, "some text");
  expect_user_error(tokenize(tok, {good, dir_ / "missing.txt"}, out), "cannot read input: No such file or directory (" + (dir_ / "missing.txt").string() + ")", out);
  expect_user_error(tokenize(tok, {dir_.path()}, out), "input is not a regular file (" + dir_.path().string() + ")", out);
  test::write_bytes(dir_ / "bad.json", "{\"model\": ");
  expect_user_error(tokenize(dir_ / "bad.json", {good}, out), (dir_ / "bad.json").string(), out);
  expect_user_error(tokenize(dir_ / "nope.json", {good}, out), (dir_ / "nope.json").string(), out);
  for (const char* f : {"1", "-0.1", "1.5", "nan"})
    expect_user_error(tokenize(tok, {good}, out, {"--val-fraction", f}), "--val-fraction must lie in [0, 1)", out);
  expect_user_error(tokenize(tok, {good}, out, {"--eos", "always"}), "invalid value 'always' for --eos", out);
  expect_user_error(tokenize(tok, {good}, out, {"--shard-tokens", "0"}), "--shard-tokens must be at least 1", out);
  // Invalid UTF-8 is found while the output is being staged: the staging directory goes too.
  test::write_bytes(dir_ / "latin1.txt", "caf\xe9 au lait");
  expect_user_error(tokenize(tok, {good, dir_ / "latin1.txt"}, out),
                    "input is not valid UTF-8 text (first bad byte at offset 3) (" + (dir_ / "latin1.txt").string() + ")", out);
  expect_user_error(test::run_upcycle({"data", "tokenize", "--input", good.string(), "--out", out.string()}),
                    "missing --tokenizer", out);
  expect_user_error(test::run_upcycle({"data", "tokenize", "--tokenizer", tok.string(), "--out", out.string()}),
                    "missing --input", out);
  expect_user_error(test::run_upcycle({"data", "frobnicate"}), "unknown data subcommand 'frobnicate'", out);
  // An existing output is refused without --force and replaced with it.
  ASSERT_EQ(tokenize(tok, {good}, out).exit_code, 0);
  auto r = tokenize(tok, {good, good}, out);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("already exists; pass --force"), std::string::npos) << r.err;
  ASSERT_EQ(tokenize(tok, {good, good}, out, {"--force"}).exit_code, 0);
  EXPECT_EQ(read_split(out, data::Split::kTrain).size(), 18u);
  // Help texts exist and teach.
  r = test::run_upcycle({"data", "tokenize", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("followed by the EOS id"), std::string::npos) << r.out;
  r = test::run_upcycle({"data", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("inspect"), std::string::npos) << r.out;
}

TEST_F(DataCli, InspectDescribesAndValidates) {
  test::write_byte_tokenizer(dir_.path());
  test::write_bytes(dir_ / "a.txt", std::string(100, 'a'));
  auto r = tokenize(dir_ / "tokenizer.json", {dir_ / "a.txt"}, dir_ / "ds", {"--val-fraction", "0.1", "--shard-tokens", "40"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = test::run_upcycle({"data", "inspect", (dir_ / "ds").string(), "--json", "--check-ids"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json j = Json::parse(r.out);
  EXPECT_EQ(j["domain"], "ds");
  EXPECT_EQ(j["vocab_size"], 256);
  EXPECT_EQ(j["splits"]["train"]["tokens"], 90);
  EXPECT_EQ(j["splits"]["train"]["shards"].size(), 3u);  // 40 + 40 + 10: the straddling part split in two
  EXPECT_EQ(j["splits"]["train"]["shards"][2]["tokens"], 10);
  EXPECT_EQ(j["splits"]["val"]["tokens"], 10);
  EXPECT_EQ(j["splits"]["val"]["shards"].size(), 1u);
  EXPECT_EQ(j["ids_checked"], true);
  r = test::run_upcycle({"data", "inspect", (dir_ / "ds").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("90 tokens (90) in 3 shards"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("uint16 ids"), std::string::npos) << r.out;
  // A corrupt shard: inspect exits 2 naming it.
  test::write_bytes(dir_ / "ds" / "val-00000.bin", test::read_bytes(dir_ / "ds" / "val-00000.bin").substr(0, 40));
  r = test::run_upcycle({"data", "inspect", (dir_ / "ds").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("truncated or corrupt) (" + (dir_ / "ds" / "val-00000.bin").string() + ")"), std::string::npos) << r.err;
}

TEST_F(DataCli, EvalOnADatasetEqualsEvalOnTheRawFile) {
  ASSERT_EQ(test::run_upcycle({"init", "--arch", "qwen2", "--preset", "tiny", "--seed", "2", (dir_ / "m").string()}).exit_code, 0);
  test::write_byte_tokenizer(dir_.path());
  std::string text;
  for (int i = 0; i < 12; ++i) text += "line " + std::to_string(i * 7) + ": the quick brown fox\n";
  test::write_bytes(dir_ / "t.txt", text);
  ASSERT_EQ(tokenize(dir_ / "tokenizer.json", {dir_ / "t.txt"}, dir_ / "ds", {"--val-fraction", "0.4", "--shard-tokens", "50"}).exit_code, 0);
  const auto eval = [&](const std::string& data, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"eval", (dir_ / "m").string(), "--data", data, "--seq-len", "8", "--batch", "3", "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_upcycle(args);
  };
  for (data::Split split : {data::Split::kVal, data::Split::kTrain}) {
    const std::string name = data::split_name(split);
    const fs::path raw = dir_ / (name + ".u32");
    test::write_bytes(raw, u32_bytes(read_split(dir_ / "ds", split)));
    // val is the default split.
    auto from_dir = split == data::Split::kVal ? eval((dir_ / "ds").string()) : eval((dir_ / "ds").string(), {"--split", name});
    auto from_raw = eval(raw.string());
    ASSERT_EQ(from_dir.exit_code, 0) << from_dir.err;
    ASSERT_EQ(from_raw.exit_code, 0) << from_raw.err;
    const Json a = Json::parse(from_dir.out), b = Json::parse(from_raw.out);
    EXPECT_EQ(a["loss"], b["loss"]) << name;
    EXPECT_EQ(a["tokens"], b["tokens"]);
    EXPECT_GE(a["sequences"].get<int>(), 3) << "several windows, across shard boundaries";
    EXPECT_EQ(a["split"], name);
  }
  // One shard on its own, recognised by its magic, equals the raw file of its ids.
  const fs::path shard = dir_ / "ds" / "train-00001.bin";
  const data::TokenShard s = data::TokenShard::open(shard);
  std::vector<int32_t> ids(s.count());
  s.read(0, s.count(), ids.data());
  test::write_bytes(dir_ / "shard.u32", u32_bytes(ids));
  EXPECT_EQ(Json::parse(eval(shard.string()).out)["loss"], Json::parse(eval((dir_ / "shard.u32").string()).out)["loss"]);

  // Errors: no val split, --split on a file, an id ≥ the model's vocab named in its shard.
  ASSERT_EQ(tokenize(dir_ / "tokenizer.json", {dir_ / "t.txt"}, dir_ / "noval").exit_code, 0);
  auto r = eval((dir_ / "noval").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("dataset has no val split: tokenize with --val-fraction (" + (dir_ / "noval" / "dataset.json").string() + ")"),
            std::string::npos) << r.err;
  r = eval(shard.string(), {"--split", "train"});
  EXPECT_NE(r.err.find("--split applies to dataset directories only"), std::string::npos) << r.err;
  std::vector<uint32_t> big(20, 5);
  big[13] = 600;  // the tiny model's vocab is 512
  data::write_token_shard(dir_ / "big.bin", big, 1000);
  r = eval((dir_ / "big.bin").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("token id 600 at position 13 is out of range: vocab_size is 512 (" + (dir_ / "big.bin").string() + ")"),
            std::string::npos) << r.err;
}

}  // namespace
}  // namespace upcycle
