// Exact parity of data::Tokenizer with the real Hugging Face tokenizers (the Rust library through its
// own Python package `tokenizers`, pinned in tests/reference/requirements.txt) on the real Llama-3 and
// Qwen3 tokenizer files in ../shared/data/tokenizers (PROVENANCE.md there).
// tests/reference/encode.py encodes every text (with and without special tokens) and decodes the
// ids (with and without skipping special tokens); the C++ results must be identical, and decode must
// give back the text (its NFC form for Qwen3). Three files: Llama-3 with Meta's BOS template
// post_processor, Qwen3 as shipped, and a GPT-2-style variant (Qwen3's vocab, ByteLevel with
// use_regex + add_prefix_space, added tokens with lstrip/rstrip/single_word/normalized flags).
// A missing reference environment or file FAILS the test, naming scripts/setup: nothing is skipped.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "data/tokenizer.h"
#include "data/unicode_text.h"
#include "support/hf_reference.h"
#include "support/test_support.h"

namespace upcycle::data {
namespace {
namespace fs = std::filesystem;
using namespace std::string_literals;
using PlainJson = nlohmann::json;

using Reference = test::HfReference;
const fs::path kLlama3 = test::kLlama3Tokenizer;
const fs::path kQwen3 = test::kQwen3Tokenizer;

std::vector<std::string> parity_texts() {
  std::vector<std::string> texts = {
      ""s, "Hello world"s, "Hello, world! How's it going?"s, " leading space"s, "trailing spaces   "s,
      "  \t\n  end  "s, "tabs\tand\t\ttabs"s, "line1\nline2\r\nline3\n\n\n"s, "   "s, "\n"s,
      "a\u0085b x \u0085 y"s,                        // NEL: White_Space for Oniguruma's \s, not PCRE2's
      "a\u00a0\u00a0b a\u1680 b \u180e x x\u200by"s,  // NBSP, ogham space, Mongolian vowel separator, ZWSP
      "\u3000\u3000全角 \u2028 \u2029"s,
      "it'S and it'\u017f and 'LL I'M YOU'RE we'Ve"s,  // case-insensitive contractions, long s
      "don't can't won't he'd she'll"s, "'s"s, "'S'T'RE"s, "ab'sdef"s,
      "12345678"s, "1 22 333 4444 55555"s, "3.14159 and 2,718,281"s, "x = 10_000_000"s,
      "\u0663\u0664\u0665 \u0661\u0662 Ⅻ ⅷ ½ ²³"s,  // non-ASCII digits and numerals
      "日本語のテキストです。"s, "中文文本，包括标点符号！"s, "한국어 텍스트"s, "Ελληνικά κείμενα"s, "Русский текст"s,
      "مرحبا بالعالم"s, "नमस्ते दुनिया \u0915\u094d\u0937"s,
      "emoji 😀👍🏽 family 👨‍👩‍👧‍👦 flag 🇩🇪"s,
      "e\u0301 vs \u00e9, A\u030a ångström Å, \u1e9b\u0323"s,  // NFC composes (Qwen3 normalizes)
      "caf\u00e9 cafe\u0301"s, "ﬁ ligature Ⓐ ① ǅungla Ǳ İstanbul ıi"s,
      "def f(x):\n    return x + 1\n\n\tif x:\n\t\tpass\n"s,
      "for (int i = 0; i < n; ++i) { sum += a[i]; }"s, "<html><body class=\"x\">hi</body></html>"s,
      "!!!???... $$$ ### @@@"s,
      "<|endoftext|>"s, "a<|endoftext|>b"s, "<|begin_of_text|>Hello<|end_of_text|>"s,
      "<|im_start|>user\nhi<|im_end|>\n"s, "<think>\nok\n</think>"s,
      "<|endoftext|><|endoftext|>  <|endoftext|> "s, "<|begin_of_text|"s,
      "\ufffd replacement \ufeff bom \0 nul \x07 bell \x1b[0m"s,  // U+FFFD, BOM, NUL, controls
      "\U0010fffd \ufdd0 noncharacters \U0001F600\U000E0001"s,
      std::string(300, 'a'), [] { std::string s; for (int i = 0; i < 40; ++i) s += "word "; return s; }(),
      // For the GPT-2-style variant's flagged added tokens (plain text for the other two files).
      "a <lx> b   <lx>  <rx>  z <rx>\n\nq"s, "wrdx wrdxs awrdx wrdx_ x wrdx swrdx 日wrdx wrdx日 wrdx,"s,
      "café x cafe\u0301  y <|endoftext|>xy <|endoftext|> x"s,
  };
  // Deterministic random mixtures of the tricky pieces above.
  const std::vector<std::string> pieces = {"a", "Z", "0", "9", " ", "'", "\t", "\n", "\r", ".", "_", "-",
                                           "\u0085", "\u00a0", "\u2028", "\u3000", "é", "e\u0301", "日", "😀",
                                           "\u200d", "ſ", "K", "\u0663", "²", "<|endoftext|>", "<|begin_of_text|>",
                                           "<think>", "'s", "'LL", "  ", "\u0301", "ǅ", "Ⅲ", "wrdx", "<lx>", "<rx>"};
  uint64_t state = 12345;
  const auto next = [&](uint64_t n) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return (state >> 33) % n;
  };
  for (int k = 0; k < 150; ++k) {
    std::string s;
    for (uint64_t n = 1 + next(24); n > 0; --n) s += pieces[next(pieces.size())];
    texts.push_back(s);
  }
  return texts;
}

class TokenizerParity : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    ASSERT_TRUE(test::hf_reference_installed(why)) << why;
    texts_ = parity_texts();
    texts_file_ = dir_ / "texts.json";
    test::write_bytes(texts_file_, PlainJson(texts_).dump());
  }

  // What decode(encode(text)) must give besides HF's own decoding: the text, its NFC form, or (with
  // ByteLevel add_prefix_space, which adds a space to every piece) only what HF gives.
  enum class RoundTrip { kText, kNfcText, kHfOnly };

  // Compares every text's encodings and decodings with the reference's.
  void expect_parity(const Tokenizer& tok, Reference& ref, RoundTrip round_trip) {
    const auto want = ref.result();
    ASSERT_TRUE(want.has_value()) << "tests/reference/encode.py failed (see its message above); run scripts/setup";
    ASSERT_EQ((*want)["ids"].size(), texts_.size());
    int mismatches = 0;
    for (size_t i = 0; i < texts_.size() && mismatches < 5; ++i) {
      const std::string& text = texts_[i];
      const auto ids = tok.encode(text);
      const auto ids_special = tok.encode(text, AddSpecial::kYes);
      const bool same = ids == (*want)["ids"][i].get<std::vector<int32_t>>() &&
                        ids_special == (*want)["ids_special"][i].get<std::vector<int32_t>>() &&
                        tok.decode(ids_special) == (*want)["decoded"][i].get<std::string>() &&
                        tok.decode(ids_special, SkipSpecial::kYes) == (*want)["decoded_skip"][i].get<std::string>();
      EXPECT_TRUE(same) << "text #" << i << ": " << PlainJson(text).dump() << "\n  ids " << PlainJson(ids).dump()
                        << "\n  HF  " << (*want)["ids"][i].dump() << "\n  ids_special " << PlainJson(ids_special).dump()
                        << "\n  HF          " << (*want)["ids_special"][i].dump();
      if (round_trip != RoundTrip::kHfOnly) {
        EXPECT_EQ(tok.decode(ids), round_trip == RoundTrip::kNfcText ? normalize(text, NormalForm::kNfc) : text)
            << "text #" << i;
      }
      mismatches += !same;
    }
  }

  test::ScratchDir dir_;
  std::vector<std::string> texts_;
  fs::path texts_file_;
};

PlainJson read_plain_json(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return PlainJson::parse(ss.str());
}

TEST_F(TokenizerParity, Llama3WithBosTemplate) {
  // The shared copy predates Meta's BOS template; put Meta's post_processor in, as the Hub file has it.
  PlainJson j = read_plain_json(kLlama3 / "tokenizer.json");
  const PlainJson bos = {{"id", "<|begin_of_text|>"}, {"type_id", 0}};
  j["post_processor"] = {
      {"type", "Sequence"},
      {"processors",
       {{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}},
        {{"type", "TemplateProcessing"},
         {"single", {{{"SpecialToken", bos}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
         {"pair", {{{"SpecialToken", bos}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                   {{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 1}}}},
                   {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
         {"special_tokens",
          {{"<|begin_of_text|>", {{"id", "<|begin_of_text|>"}, {"ids", {128000}}, {"tokens", {"<|begin_of_text|>"}}}}}}}}}};
  fs::create_directories(dir_ / "llama3");
  test::write_bytes(dir_ / "llama3/tokenizer.json", j.dump());
  fs::copy_file(kLlama3 / "tokenizer_config.json", dir_ / "llama3/tokenizer_config.json");
  Reference ref(dir_ / "llama3/tokenizer.json", texts_file_);
  const Tokenizer tok = Tokenizer::load(dir_ / "llama3");
  EXPECT_EQ(tok.vocab_size(), 128256);
  EXPECT_EQ(tok.bos_id(), 128000);
  EXPECT_EQ(tok.eos_id(), 128001);
  EXPECT_EQ(tok.encode("Hello", AddSpecial::kYes).front(), 128000);
  expect_parity(tok, ref, RoundTrip::kText);
}

TEST_F(TokenizerParity, Qwen3AsShipped) {
  Reference ref(kQwen3 / "tokenizer.json", texts_file_);
  const Tokenizer tok = Tokenizer::load(kQwen3);
  EXPECT_EQ(tok.vocab_size(), 151669);
  EXPECT_EQ(tok.bos_id(), std::nullopt);
  EXPECT_EQ(tok.eos_id(), tok.token_to_id("<|im_end|>"));
  expect_parity(tok, ref, RoundTrip::kNfcText);
}

TEST_F(TokenizerParity, Gpt2StyleByteLevelRegexAndAddedTokenFlags) {
  PlainJson j = read_plain_json(kQwen3 / "tokenizer.json");
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  const auto token = [](int id, const char* content, bool lstrip, bool rstrip, bool single_word, bool normalized) {
    return PlainJson{{"id", id},         {"content", content},       {"single_word", single_word},
                     {"lstrip", lstrip}, {"rstrip", rstrip},         {"normalized", normalized},
                     {"special", !normalized}};
  };
  j["added_tokens"].push_back(token(151669, "<lx>", true, false, false, false));
  j["added_tokens"].push_back(token(151670, "<rx>", false, true, false, false));
  j["added_tokens"].push_back(token(151671, "wrdx", false, false, true, false));
  j["added_tokens"].push_back(token(151672, "caf\u00e9", true, true, false, true));
  j["added_tokens"].push_back(token(151673, "<|endoftext|>x", false, false, false, false));
  test::write_bytes(dir_ / "tokenizer.json", j.dump());
  Reference ref(dir_ / "tokenizer.json", texts_file_);
  const Tokenizer tok = Tokenizer::load(dir_ / "tokenizer.json");
  EXPECT_EQ(tok.encode("café"), std::vector<int32_t>{151672});
  EXPECT_EQ(tok.decode(tok.encode("a b")), " a b");  // the prefix space stays, in HF too
  expect_parity(tok, ref, RoundTrip::kHfOnly);
}

}  // namespace
}  // namespace upcycle::data
