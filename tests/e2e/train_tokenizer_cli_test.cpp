// `upcycle data train-tokenizer` driven as a user would: the written tokenizer.json and
// tokenizer_config.json load (vocab size exact, EOS = first special), encode/decode round-trips,
// reruns are byte-identical (any --threads), an existing output needs --force, and every bad input
// is one `upcycle: error:` line, exit 2, with nothing written (no temp files either). What it writes
// loads in transformers' AutoTokenizer (the real library, tests/reference/encode.py --transformers)
// with the same EOS and encodes and decodes exactly as upcycle does.
#include <gtest/gtest.h>

#include <filesystem>

#include "data/tokenizer.h"
#include "support/hf_reference.h"
#include "support/test_support.h"

namespace upcycle {
namespace {
namespace fs = std::filesystem;
using test::run_upcycle;

std::string sample_text(int variant) {
  std::string s;
  for (int i = 0; i < 200; ++i)
    s += "Document " + std::to_string(variant * 1000 + i) + ": the model's loss fell; café 日本語 😀\n"
         "def step(x):\n    return x * 0.5  # halve\n\n";
  return s;
}

size_t count_lines(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

class TrainTokenizerCli : public ::testing::Test {
 protected:
  void SetUp() override {
    test::write_bytes(dir_ / "a.txt", sample_text(1));
    test::write_bytes(dir_ / "b.txt", sample_text(2));
    fs::create_directory(dir_ / "out");
  }
  std::vector<std::string> train_args(const std::string& out) const {
    return {"data", "train-tokenizer", "--vocab-size", "320", "--input", (dir_ / "a.txt").string(),
            (dir_ / "b.txt").string(), "--out", out, "--special-tokens", "<|endoftext|>,<|pad|>"};
  }
  // Runs a command that must fail: one error line naming `needle`, exit 2, and `out` still empty.
  void expect_user_error(std::vector<std::string> args, const std::string& needle) {
    const auto r = run_upcycle(args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(r.err.rfind("upcycle: error: ", 0), 0u) << r.err;
    EXPECT_EQ(count_lines(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_TRUE(fs::is_empty(dir_ / "out")) << "nothing may be written on error";
  }
  test::ScratchDir dir_;
};

TEST_F(TrainTokenizerCli, WritesLoadableTokenizerWithEos) {
  const fs::path out = dir_ / "out" / "tok.json";
  auto r = run_upcycle(train_args(out.string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("vocab 320 = 256 bytes + "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("eos: <|endoftext|> (id 318)"), std::string::npos) << r.out;
  ASSERT_TRUE(fs::exists(dir_ / "out" / "tokenizer_config.json"));
  const data::Tokenizer tok = data::Tokenizer::load(out);
  EXPECT_EQ(tok.vocab_size(), 320);
  EXPECT_EQ(tok.eos_id(), 318);
  EXPECT_EQ(tok.token_to_id("<|pad|>"), 319);
  const std::string text = "Document 7: the loss<|endoftext|>café\n\tdef";
  const auto ids = tok.encode(text);
  EXPECT_LT(ids.size(), text.size() / 2) << "the learned merges should apply";
  EXPECT_EQ(tok.decode(ids), text);
  const std::string first = test::read_bytes(out);

  // Without --force an existing output is refused and left alone; with it, the rerun (one thread)
  // writes the very same bytes.
  r = run_upcycle(train_args(out.string()));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("already exists (use --force"), std::string::npos) << r.err;
  EXPECT_EQ(test::read_bytes(out), first);
  auto args = train_args(out.string());
  args.insert(args.end(), {"--force", "--threads", "1"});
  r = run_upcycle(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(test::read_bytes(out), first);
  size_t files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_ / "out")) ++files;
  EXPECT_EQ(files, 2u) << "tokenizer.json and tokenizer_config.json only, no temp files";
}

TEST_F(TrainTokenizerCli, TransformersAutoTokenizerLoadsItAndAgrees) {
  std::string why;
  ASSERT_TRUE(test::hf_reference_installed(why)) << why;
  const fs::path out_dir = dir_ / "out";
  auto r = run_upcycle(train_args((out_dir / "tokenizer.json").string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> texts = {"Document 7: the loss<|endoftext|>café\n\tdef", "", " leading", "<|pad|><|pad|>",
                                          "def step(x):\n    return x * 0.5  # halve\n\n", "日本語 😀 unseen Ωmega 123456",
                                          "a<|endoftext|>b <|endoftext|> c", "trailing spaces   \n\n"};
  test::write_bytes(dir_ / "texts.json", nlohmann::json(texts).dump());
  test::HfReference ref(out_dir, dir_ / "texts.json", test::HfLibrary::kTransformers);
  const data::Tokenizer tok = data::Tokenizer::load(out_dir / "tokenizer.json");
  const auto want = ref.result();
  ASSERT_TRUE(want.has_value()) << "transformers' AutoTokenizer failed on the written directory (message above)";
  EXPECT_EQ((*want)["eos_token"], "<|endoftext|>");
  EXPECT_EQ((*want)["eos_token_id"], 318);
  EXPECT_EQ((*want)["eos_token_id"].get<int32_t>(), tok.eos_id());
  EXPECT_TRUE((*want)["bos_token_id"].is_null());
  EXPECT_EQ((*want)["vocab_size"], 320);
  for (size_t i = 0; i < texts.size(); ++i) {
    SCOPED_TRACE(nlohmann::json(texts[i]).dump());
    const auto ids = tok.encode(texts[i]);
    EXPECT_EQ(ids, (*want)["ids"][i].get<std::vector<int32_t>>());
    EXPECT_EQ(tok.encode(texts[i], data::AddSpecial::kYes), (*want)["ids_special"][i].get<std::vector<int32_t>>());
    EXPECT_EQ(tok.decode(ids), (*want)["decoded"][i].get<std::string>());
    EXPECT_EQ(tok.decode(ids, data::SkipSpecial::kYes), (*want)["decoded_skip"][i].get<std::string>());
  }
}

TEST_F(TrainTokenizerCli, DirectoryOutputAndEarlyStop) {
  test::write_bytes(dir_ / "tiny.txt", "ab ab ab cd");
  const auto r = run_upcycle({"data", "train-tokenizer", "--vocab-size", "1000", "--input", (dir_ / "tiny.txt").string(),
                              "--out", (dir_ / "out").string(), "--pattern", "gpt2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("stopped at 259 of the 1000 tokens"), std::string::npos) << r.err;
  const data::Tokenizer tok = data::Tokenizer::load(dir_ / "out");  // out/tokenizer.json
  EXPECT_EQ(tok.vocab_size(), 259);  // bytes, "ab", " ab", <|endoftext|>
  EXPECT_EQ(tok.encode(" ab ab").size(), 2u);
  EXPECT_EQ(tok.eos_id(), 258);
}

TEST_F(TrainTokenizerCli, BadInputsAreOneLineErrors) {
  const std::string out = (dir_ / "out" / "tokenizer.json").string();
  const std::string a = (dir_ / "a.txt").string();
  test::write_bytes(dir_ / "bad.txt", "fine\n\xff\xfe");
  expect_user_error({"data", "train-tokenizer", "--input", a, "--out", out}, "missing --vocab-size");
  expect_user_error({"data", "train-tokenizer", "--vocab-size", "300", "--out", out}, "missing --input");
  expect_user_error({"data", "train-tokenizer", "--vocab-size", "300", "--input", a}, "missing --out");
  expect_user_error({"data", "train-tokenizer", "--vocab-size", "256", "--input", a, "--out", out},
                    "too small: the 256 byte tokens and 1 special token(s) need at least 257");
  expect_user_error({"data", "train-tokenizer", "--vocab-size", "300", "--input", (dir_ / "nope.txt").string(), "--out", out},
                    "input file not found (" + (dir_ / "nope.txt").string() + ")");
  expect_user_error({"data", "train-tokenizer", "--vocab-size", "300", "--input", a, (dir_ / "bad.txt").string(), "--out", out},
                    "not valid UTF-8 (first bad byte at offset 5) (" + (dir_ / "bad.txt").string() + ")");
  expect_user_error({"data", "train-tokenizer", "--vocab-size", "300", "--input", a, "--out", out, "--pattern", "bert"},
                    "--pattern");
  expect_user_error({"data", "train-tokenizer", "--vocab-size", "300", "--input", a, "--out", out, "--special-tokens", "<a>,,<b>"},
                    "special token #2 is empty");
  expect_user_error({"data", "train-tokenizer", "--vocab-size", "300", "--input", a, "--out",
                     (dir_ / "missing" / "tokenizer.json").string()},
                    "output directory does not exist (" + (dir_ / "missing").string() + ")");
  expect_user_error({"data", "frobnicate"}, "unknown data subcommand 'frobnicate'");
}

TEST_F(TrainTokenizerCli, HelpTeaches) {
  auto r = run_upcycle({"data", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("train-tokenizer"), std::string::npos);
  r = run_upcycle({"data", "train-tokenizer", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* s : {"--vocab-size", "--input", "--special-tokens", "--min-frequency", "eos_token", "example"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s;
  r = run_upcycle({"--help"});
  EXPECT_NE(r.out.find("data "), std::string::npos);
}

}  // namespace
}  // namespace upcycle
