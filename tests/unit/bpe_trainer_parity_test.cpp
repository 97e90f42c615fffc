// Trained tokenizers load in the real Hugging Face tokenizers (Rust, via tests/reference/encode.py)
// and in data::Tokenizer, and both encode and decode a varied text set identically; decode(encode(x))
// gives x back; the EOS comes from the tokenizer_config.json written beside it. One tokenizer per
// pre-tokenizer pattern, plus one whose special token "Ġthe" is also reached by merges (so the
// special's id is a merge result too). A missing reference environment FAILS, naming scripts/setup.
#include <gtest/gtest.h>

#include <memory>

#include "data/bpe_trainer.h"
#include "data/tokenizer.h"
#include "support/hf_reference.h"
#include "support/test_support.h"

namespace upcycle::data {
namespace {
namespace fs = std::filesystem;
using namespace std::string_literals;

// The training text: prose, code, digits, whitespace runs, several scripts, special tokens.
std::string training_corpus() {
  const std::vector<std::string> pieces = {
      "The quick brown fox jumps over the lazy dog. ", "There is the thing they said; then they left.\n",
      "It's what they'RE doing, isn't it? ", "\n", "\n\n", "\r\n", "    ", "\t\t", "  \n  ",
      "def f(x):\n    return x + 1\n", "for (int i = 0; i < n; ++i) { sum += a[i]; }\n", "if x == 10_000:\n\tpass\n",
      "12345678 ", "3.14159, 2,718 ", "2024-01-31 ", "日本語のテキストです。", "中文文本，包括标点符号！",
      "Русский текст ", "Ελληνικά ", "emoji 😀👍🏽 ", "café naïve ", "\u00a0\u3000", "<|endoftext|>", "<|pad|>", "!!!??? "};
  const std::vector<std::string> syllables = {"ka", "ro", "ten", "mi", "sha", "ul", "ber", "tion", "ing", "qu", "é", "ß"};
  std::string out;
  uint64_t state = 99;
  const auto next = [&](uint64_t n) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return (state >> 33) % n;
  };
  while (out.size() < 150000) {
    if (next(2)) {
      out += pieces[next(pieces.size())];
    } else {  // a made-up word of 1–3 syllables: many distinct words, as in real text
      out += next(4) ? " " : "\n";
      for (uint64_t n = 1 + next(3); n > 0; --n) out += syllables[next(syllables.size())];
    }
  }
  return out;
}

std::vector<std::string> texts() {
  return {""s, "Hello world"s, "The quick brown fox, the lazy dog."s, " leading space"s, "trailing spaces   "s,
          "  \t\n  end  "s, "tabs\tand\t\ttabs"s, "line1\nline2\r\nline3\n\n\n"s, "   "s, "\n"s,
          "a\u0085b x \u0085 y"s, "a\u00a0\u00a0b \u3000\u3000全角 \u2028"s, "it'S and 'LL I'M YOU'RE we'Ve"s,
          "12345678"s, "1 22 333 4444 55555"s, "3.14159 and 2,718,281"s, "x = 10_000_000"s, "\u0663\u0664 Ⅻ ½ ²³"s,
          "日本語のテキストです。"s, "한국어 텍스트 (unseen script)"s, "Русский текст"s, "emoji 😀👍🏽 👨‍👩‍👧‍👦 🇩🇪"s,
          "e\u0301 vs \u00e9"s, "def f(x):\n    return x + 1\n\n\tif x:\n\t\tpass\n"s,
          "for (int i = 0; i < n; ++i) { sum += a[i]; }"s, "<html><body class=\"x\">hi</body></html>"s,
          "<|endoftext|>"s, "a<|endoftext|>b"s, "<|pad|><|pad|> <|endoftext|> "s, "<|endoftext|"s,
          "there the other theme"s, "\ufffd \ufeff \0 nul \x07 bell \x1b[0m"s, std::string(300, 'a'),
          [] { std::string s; for (int i = 0; i < 40; ++i) s += "word "; return s; }()};
}

struct Case {
  SplitPattern pattern;
  std::vector<std::string> specials;
  int64_t vocab_size;
};

class BpeTrainerParity : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    ASSERT_TRUE(test::hf_reference_installed(why)) << why;
    texts_ = texts();
    // And 20 kB of the training text itself (cut at an ASCII byte, so still valid UTF-8).
    const std::string corpus = training_corpus();
    size_t cut = 20000;
    while (static_cast<unsigned char>(corpus[cut]) >= 0x80) ++cut;
    texts_.push_back(corpus.substr(0, cut));
    texts_file_ = dir_ / "texts.json";
    test::write_bytes(texts_file_, nlohmann::json(texts_).dump());
  }
  test::ScratchDir dir_;
  std::vector<std::string> texts_;
  fs::path texts_file_;
};

TEST_F(BpeTrainerParity, HfTokenizersAndOursAgree) {
  const std::string corpus = training_corpus();
  const std::vector<Case> cases = {{SplitPattern::kGpt2, {"<|endoftext|>", "<|pad|>"}, 700},
                                   {SplitPattern::kLlama3, {"<|endoftext|>", "<|pad|>"}, 900},
                                   {SplitPattern::kQwen2, {"<|endoftext|>", "<|pad|>"}, 600},
                                   {SplitPattern::kLlama3, {"<|endoftext|>", "\u0120the"}, 800}};
  std::vector<BpeTrainResult> results;
  std::vector<std::unique_ptr<test::HfReference>> refs;  // started together, so the Python runs overlap
  for (size_t k = 0; k < cases.size(); ++k) {
    BpeTrainerOptions o;
    o.pattern = cases[k].pattern;
    o.special_tokens = cases[k].specials;
    o.vocab_size = cases[k].vocab_size;
    BpeWordCounter counter(o);
    counter.add_document(corpus, "corpus");
    results.push_back(train_bpe(counter.counts(), o));
    const fs::path dir = dir_ / ("tok" + std::to_string(k));
    fs::create_directory(dir);
    test::write_bytes(dir / "tokenizer.json", tokenizer_json(results.back(), o.pattern));
    test::write_bytes(dir / "tokenizer_config.json", tokenizer_config_json(results.back()));
    refs.push_back(std::make_unique<test::HfReference>(dir / "tokenizer.json", texts_file_));
  }
  const std::vector<std::string>& all = texts_;
  for (size_t k = 0; k < cases.size(); ++k) {
    SCOPED_TRACE("case " + std::to_string(k) + " (" + std::string(split_pattern_name(cases[k].pattern)) + ")");
    const BpeTrainResult& r = results[k];
    ASSERT_EQ(r.vocab_size(), cases[k].vocab_size);
    EXPECT_FALSE(r.stopped_early);
    const Tokenizer tok = Tokenizer::load(dir_ / ("tok" + std::to_string(k)));
    EXPECT_EQ(tok.vocab_size(), cases[k].vocab_size);
    const int32_t eos = int32_t(cases[k].vocab_size - 2);
    EXPECT_EQ(tok.eos_id(), eos);
    EXPECT_EQ(tok.token_to_id("<|endoftext|>"), eos);
    EXPECT_EQ(tok.bos_id(), std::nullopt);
    const auto want = refs[k]->result();
    ASSERT_TRUE(want.has_value()) << "tests/reference/encode.py failed on the trained tokenizer (message above)";
    for (size_t i = 0; i < all.size(); ++i) {
      const auto ids = tok.encode(all[i]);
      EXPECT_EQ(ids, (*want)["ids"][i].get<std::vector<int32_t>>()) << nlohmann::json(all[i]).dump();
      EXPECT_EQ(tok.encode(all[i], AddSpecial::kYes), (*want)["ids_special"][i].get<std::vector<int32_t>>());
      EXPECT_EQ(tok.decode(ids), (*want)["decoded"][i].get<std::string>());
      EXPECT_EQ(tok.decode(ids, SkipSpecial::kYes), (*want)["decoded_skip"][i].get<std::string>());
      EXPECT_EQ(tok.decode(ids), all[i]) << "round trip";
    }
    EXPECT_LT(double(tok.encode(corpus).size()), 0.4 * double(corpus.size())) << "the training text compresses";
  }
  // "Ġthe" (U+0120 is the stand-in of the space byte): a special token and the result of merging
  // " the" at once, so encoding " the" gives the special's id, in HF as in ours (checked above).
  const BpeTrainResult& the = results[3];
  const int32_t the_id = int32_t(the.vocab_size() - 1);
  EXPECT_EQ(the.tokens.back(), "\u0120the");
  EXPECT_NE(std::find(the.merged_ids.begin(), the.merged_ids.end(), the_id), the.merged_ids.end());
  EXPECT_EQ(Tokenizer::load(dir_ / "tok3").encode(" the"), std::vector<int32_t>{the_id});
}

}  // namespace
}  // namespace upcycle::data
