// `upcycle generate` and `upcycle eval` end to end on a tiny qwen2 written by `init`:
// generate prints one line of ids equal to the argmax of repeated in-process full forwards (greedy),
// reproduces per seed, reduces to greedy with a tiny top-p, stops at config.json's eos_token_id, and
// rejects bad input with one-line errors (exit 2); eval's --json matches a hand computation of the
// windowed loss from in-process forwards and every malformed token file gives a one-line error.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "backend/backend.h"
#include "core/json.h"
#include "data/byte_level_bpe.h"
#include "data/tokenizer.h"
#include "io/checkpoint.h"
#include "io/model_config.h"
#include "model/parameters.h"
#include "model/transformer.h"
#include "support/test_support.h"

namespace upcycle {
namespace {
namespace fs = std::filesystem;

std::vector<int32_t> parse_ids(const std::string& line) {
  std::istringstream in(line);
  std::vector<int32_t> ids;
  for (int32_t id; in >> id;) ids.push_back(id);
  return ids;
}

std::string u32_bytes(const std::vector<uint32_t>& ids) {
  std::string s;
  for (uint32_t id : ids)
    for (int b = 0; b < 4; ++b) s += char((id >> (8 * b)) & 0xff);
  return s;
}

class GenerateEvalCli : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = test::run_upcycle({"init", "--arch", "qwen2", "--preset", "tiny", "--dtype", "f32", "--seed", "4",
                                model_.string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    config_ = read_model_config(model_);
  }
  std::unique_ptr<model::Transformer> load(backend::Backend& be) {
    auto m = std::make_unique<model::Transformer>(config_, be);
    Checkpoint ckpt = Checkpoint::open(model_);
    model::load_parameters(m->params(), ckpt, model::checked_weight_table(config_, ckpt));
    return m;
  }
  test::RunResult generate(std::vector<std::string> extra) {
    std::vector<std::string> args = {"generate", model_.string(), "--tokens", "1 15 27 3"};
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_upcycle(args);
  }
  void expect_user_error(const test::RunResult& r, const std::string& needle) {
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_EQ(r.err.rfind("upcycle: error: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
  }
  test::ScratchDir dir_;
  fs::path model_ = dir_ / "m";
  ModelConfig config_;
};

TEST_F(GenerateEvalCli, GenerateGreedyEqualsArgmaxOfFullForwards) {
  auto be = backend::make_backend(backend::BackendKind::kRef);
  auto m = load(*be);
  std::vector<int32_t> seq = {1, 15, 27, 3}, want;
  const int64_t V = config_.vocab_size;
  for (int k = 0; k < 8; ++k) {
    const float* last = m->forward(seq.data(), 1, int64_t(seq.size())) + (int64_t(seq.size()) - 1) * V;
    want.push_back(int32_t(std::max_element(last, last + V) - last));
    seq.push_back(want.back());
  }
  for (std::string backend : {"cpu", "ref"}) {
    auto r = generate({"--max-new-tokens", "8", "--backend", backend});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    EXPECT_EQ(parse_ids(r.out), want) << backend;
    EXPECT_NE(r.err.find("tokens/s"), std::string::npos) << r.err;
  }
}

TEST_F(GenerateEvalCli, GenerateSeedsTopPAndEos) {
  auto a = generate({"--max-new-tokens", "12", "--temperature", "1", "--seed", "1"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(parse_ids(a.out).size(), 12u);
  EXPECT_EQ(generate({"--max-new-tokens", "12", "--temperature", "1", "--seed", "1"}).out, a.out);
  EXPECT_NE(generate({"--max-new-tokens", "12", "--temperature", "1", "--seed", "2"}).out, a.out);
  const std::string greedy = generate({"--max-new-tokens", "6"}).out;
  EXPECT_EQ(generate({"--max-new-tokens", "6", "--temperature", "2", "--top-p", "1e-9", "--seed", "3"}).out, greedy);

  // eos_token_id as a list holding the greedy stream's third token: output stops right after it.
  const std::vector<int32_t> g = parse_ids(greedy);
  ASSERT_EQ(g.size(), 6u);
  Json cfg = read_json_file(model_ / "config.json", "config");
  cfg["eos_token_id"] = Json::array({int64_t(config_.vocab_size) + 5, g[2]});
  test::write_bytes(model_ / "config.json", cfg.dump(2));
  auto r = generate({"--max-new-tokens", "6"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(parse_ids(r.out), std::vector<int32_t>(g.begin(), std::find(g.begin(), g.end(), g[2]) + 1));
  EXPECT_NE(r.err.find("stopped at eos"), std::string::npos) << r.err;
  cfg["eos_token_id"] = "two";
  test::write_bytes(model_ / "config.json", cfg.dump(2));
  expect_user_error(generate({"--max-new-tokens", "6"}), "eos_token_id must be");
}

TEST_F(GenerateEvalCli, GenerateBadInputsAreOneLineErrors) {
  expect_user_error(test::run_upcycle({"generate", model_.string(), "--tokens", "1 512", "--max-new-tokens", "2"}),
                    "token id 512 is out of range");
  expect_user_error(generate({"--max-new-tokens", "0"}), "--max-new-tokens must be at least 1");
  expect_user_error(generate({"--max-new-tokens", "-3"}), "--max-new-tokens must be at least 1");
  expect_user_error(generate({}), "missing --max-new-tokens");
  expect_user_error(generate({"--max-new-tokens", "2", "--temperature", "-0.5"}), "--temperature must be");
  expect_user_error(generate({"--max-new-tokens", "2", "--temperature", "nan"}), "--temperature");
  expect_user_error(generate({"--max-new-tokens", "2", "--top-p", "0"}), "--top-p must lie in (0, 1]");
  expect_user_error(generate({"--max-new-tokens", "2", "--top-p", "1.5"}), "--top-p must lie in (0, 1]");
  expect_user_error(test::run_upcycle({"generate", model_.string(), "--prompt", "hello", "--max-new-tokens", "2"}),
                    "tokenizer.json, which is missing (or pass ids with --tokens) (" + (model_ / "tokenizer.json").string() + ")");
  expect_user_error(generate({"--prompt", "hi", "--max-new-tokens", "2"}), "mutually exclusive");
  expect_user_error(generate({"--print-ids", "--max-new-tokens", "2"}), "--print-ids goes with --prompt");
  expect_user_error(test::run_upcycle({"generate", model_.string(), "--max-new-tokens", "2"}), "missing --tokens");
}

// A byte-level tokenizer.json for the tiny model: the 256 byte stand-ins are ids 0..255, "h"+"i"
// merges into 256 and <|endoftext|> is special 257 — all below the tiny preset's vocab_size.
void write_tiny_tokenizer(const fs::path& dir) {
  Json vocab = Json::object();
  for (int b = 0; b < 256; ++b) vocab[data::byte_to_unicode(uint8_t(b))] = b;
  vocab["hi"] = 256;
  Json j = {{"added_tokens", {{{"id", 257}, {"content", "<|endoftext|>"}, {"special", true}, {"normalized", false}}}},
            {"normalizer", nullptr},
            {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
            {"post_processor", nullptr},
            {"decoder", {{"type", "ByteLevel"}}},
            {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", Json::array({"h i"})}}}};
  test::write_bytes(dir / "tokenizer.json", j.dump());
}

TEST_F(GenerateEvalCli, GeneratePromptEncodesAndDecodesWithTheCheckpointTokenizer) {
  write_tiny_tokenizer(model_);
  const data::Tokenizer tok = data::Tokenizer::load(model_);
  const std::vector<int32_t> prompt = tok.encode("hi there<|endoftext|>");
  ASSERT_EQ(prompt, (std::vector<int32_t>{256, ' ', 't', 'h', 'e', 'r', 'e', 257}));  // hand-worked
  std::string ids_text;
  for (int32_t id : prompt) ids_text += std::to_string(id) + " ";
  auto by_ids = test::run_upcycle({"generate", model_.string(), "--tokens", ids_text, "--max-new-tokens", "6"});
  ASSERT_EQ(by_ids.exit_code, 0) << by_ids.err;
  auto by_text = test::run_upcycle(
      {"generate", model_.string(), "--prompt", "hi there<|endoftext|>", "--max-new-tokens", "6"});
  ASSERT_EQ(by_text.exit_code, 0) << by_text.err;
  EXPECT_EQ(by_text.out, tok.decode(parse_ids(by_ids.out)) + "\n");
  auto printed_ids = test::run_upcycle(
      {"generate", model_.string(), "--prompt", "hi there<|endoftext|>", "--max-new-tokens", "6", "--print-ids"});
  ASSERT_EQ(printed_ids.exit_code, 0) << printed_ids.err;
  EXPECT_EQ(printed_ids.out, by_ids.out);
  expect_user_error(test::run_upcycle({"generate", model_.string(), "--prompt", "", "--max-new-tokens", "2"}),
                    "--prompt encodes to no tokens");
  test::write_bytes(model_ / "tokenizer.json", "{\"model\": {\"type\": \"Unigram\"}}");
  expect_user_error(test::run_upcycle({"generate", model_.string(), "--prompt", "hi", "--max-new-tokens", "2"}),
                    "unsupported model type Unigram (only BPE is supported) (" + (model_ / "tokenizer.json").string() + ")");
}

TEST_F(GenerateEvalCli, EvalJsonMatchesHandComputation) {
  // 3 whole windows of seq_len + 1 = 6 tokens plus 4 trailing tokens (dropped).
  std::vector<uint32_t> ids;
  for (uint32_t i = 0; i < 22; ++i) ids.push_back((i * 37 + 11) % uint32_t(config_.vocab_size));
  test::write_bytes(dir_ / "val.u32", u32_bytes(ids));
  auto be = backend::make_backend(backend::BackendKind::kRef);
  auto m = load(*be);
  const int64_t V = config_.vocab_size, L = 5;
  double sum = 0.0;
  for (int w = 0; w < 3; ++w) {
    std::vector<int32_t> win(ids.begin() + w * (L + 1), ids.begin() + (w + 1) * (L + 1));
    const float* logits = m->forward(win.data(), 1, L);
    for (int64_t t = 0; t < L; ++t) {
      const float* row = logits + t * V;
      double mx = *std::max_element(row, row + V), z = 0.0;
      for (int64_t v = 0; v < V; ++v) z += std::exp(double(row[v]) - mx);
      sum -= double(row[win[size_t(t + 1)]]) - mx - std::log(z);
    }
  }
  const double want = sum / 15.0;
  for (std::string backend : {"cpu", "ref", "cpu-bf16"}) {
    auto r = test::run_upcycle({"eval", model_.string(), "--data", (dir_ / "val.u32").string(), "--seq-len", "5",
                                "--batch", "2", "--json", "--backend", backend});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const Json j = Json::parse(r.out);
    const double rtol = backend == "cpu-bf16" ? 1e-2 : 1e-5;  // bf16-rounded matmul inputs
    EXPECT_NEAR(j["loss"].get<double>(), want, rtol * want) << backend;
    // |Δ ppl| / ppl ≈ |Δ loss|: the loss tolerance carries over to perplexity as rtol·want.
    const double ppl_rtol = backend == "cpu-bf16" ? rtol * want * 1.01 : rtol;
    EXPECT_NEAR(j["perplexity"].get<double>(), std::exp(want), ppl_rtol * std::exp(want));
    EXPECT_EQ(j["tokens"], 15);
    EXPECT_EQ(j["sequences"], 3);
    EXPECT_EQ(j["seq_len"], 5);
    EXPECT_EQ(j["checkpoint"], model_.string());
    EXPECT_EQ(j["data"], (dir_ / "val.u32").string());
    EXPECT_FALSE(j.contains("routing"));
  }
  // --max-tokens 12 keeps the first ⌊12 / 5⌋ = 2 windows; the text form names the counts.
  auto r = test::run_upcycle({"eval", model_.string(), "--data", (dir_ / "val.u32").string(), "--seq-len", "5",
                              "--max-tokens", "12"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("10 tokens in 2 windows of 5"), std::string::npos) << r.out;
}

TEST_F(GenerateEvalCli, EvalMalformedInputsAreOneLineErrors) {
  const std::string data = (dir_ / "d.u32").string();
  auto eval = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"eval", model_.string(), "--data", data};
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_upcycle(args);
  };
  test::write_bytes(data, u32_bytes({1, 2, 3}) + "xy");
  expect_user_error(eval({"--seq-len", "2"}), "size 14 bytes is not a multiple of 4");
  expect_user_error(eval({"--seq-len", "2"}), data);
  test::write_bytes(data, u32_bytes({1, 2, 3, 4, 5, 600, 7, 8}));
  expect_user_error(eval({"--seq-len", "3"}), "token id 600 at position 5 is out of range");
  test::write_bytes(data, u32_bytes({1, 2, 3}));
  expect_user_error(eval({"--seq-len", "3"}), "fewer than one window");
  expect_user_error(eval({"--seq-len", "0"}), "--seq-len must be at least 1");
  expect_user_error(eval({"--seq-len", "2", "--batch", "0"}), "--batch must be at least 1");
  expect_user_error(eval({"--seq-len", "2", "--max-tokens", "1"}), "--max-tokens 1 is smaller");
  expect_user_error(test::run_upcycle({"eval", model_.string()}), "missing --data");
  expect_user_error(test::run_upcycle({"eval", model_.string(), "--data", (dir_ / "nope").string()}),
                    "cannot open token file");
}

}  // namespace
}  // namespace upcycle
