// data::Tokenizer on hand-built tokenizer.json files whose encodings are worked out by hand: BPE
// merge rank order (lowest rank first, equal ranks left to right), ignore_merges, added-token
// flags (lstrip, rstrip, single_word, normalized + NFC, special on decode), the TemplateProcessing
// post_processor, tokenizer_config.json bos/eos, lossy UTF-8 decoding, the GPT-2 byte alphabet, and
// one-line errors naming the file for malformed or unsupported files. Parity with the real HF
// tokenizers on real files is tokenizer_parity_test.cpp.
#include <gtest/gtest.h>

#include "core/json.h"
#include "data/byte_level_bpe.h"
#include "data/pre_tokenizer.h"
#include "data/tokenizer.h"
#include "data/unicode_text.h"
#include "support/expect_error.h"
#include "support/test_support.h"

namespace upcycle::data {
namespace {
namespace fs = std::filesystem;
using Ids = std::vector<int32_t>;

// Vocab: single bytes a=0 b=1 c=2 d=3 Ġ(space)=4 Ã=5 ©=6 (é = bytes C3 A9 → "Ã©"), then merges' results.
Json tiny_tokenizer(Json merges, bool ignore_merges = false) {
  Json vocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"d", 3}, {"Ġ", 4}, {"Ã", 5}, {"©", 6},
                {"ab", 7}, {"bc", 8}, {"abc", 9}, {"aa", 10}, {"Ġa", 11}, {"Ã©", 12}};
  return Json{{"version", "1.0"},
              {"added_tokens", Json::array()},
              {"normalizer", nullptr},
              {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
              {"post_processor", nullptr},
              {"decoder", {{"type", "ByteLevel"}}},
              {"model",
               {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
                {"ignore_merges", ignore_merges}, {"vocab", vocab}, {"merges", merges}}}};
}

Json added(const std::string& content, int id, bool special, Json flags = Json::object()) {
  Json t = {{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
            {"normalized", false}, {"special", special}};
  for (auto& [k, v] : flags.items()) t[k] = v;
  return t;
}

class TokenizerTest : public ::testing::Test {
 protected:
  Tokenizer load(const Json& j) {
    test::write_bytes(file_, j.dump());
    return Tokenizer::load(file_);
  }
  test::ScratchDir dir_;
  fs::path file_ = dir_ / "tokenizer.json";
};

TEST_F(TokenizerTest, MergesApplyInRankOrder) {
  // "abc": with "b c" ranked first, bc forms and "a b" can no longer apply.
  EXPECT_EQ(load(tiny_tokenizer(Json::array({"b c", "a b"}))).encode("abc"), (Ids{0, 8}));
  EXPECT_EQ(load(tiny_tokenizer(Json::array({"a b", "b c"}))).encode("abc"), (Ids{7, 2}));
  EXPECT_EQ(load(tiny_tokenizer(Json::array({"a b", "b c", "ab c"}))).encode("abc"), (Ids{9}));
  // Merges as [left, right] pairs (the newer serialization) behave the same.
  EXPECT_EQ(load(tiny_tokenizer(Json::array({Json::array({"b", "c"}), Json::array({"a", "b"})}))).encode("abc"), (Ids{0, 8}));
  // Equal ranks merge left to right: aaa → aa a, aaaaa → aa aa a.
  EXPECT_EQ(load(tiny_tokenizer(Json::array({"a a"}))).encode("aaa"), (Ids{10, 0}));
  EXPECT_EQ(load(tiny_tokenizer(Json::array({"a a"}))).encode("aaaaa"), (Ids{10, 10, 0}));
  // GPT-2 regex splits " abc" into one pre-token " abc" = Ġ a b c; "Ġ a" merges first here.
  EXPECT_EQ(load(tiny_tokenizer(Json::array({"Ġ a", "b c"}))).encode("d abc"), (Ids{3, 11, 8}));
  // é is two bytes; its stand-ins Ã © merge into one token and decode back.
  Tokenizer t = load(tiny_tokenizer(Json::array({"Ã ©"})));
  EXPECT_EQ(t.encode("é"), (Ids{12}));
  EXPECT_EQ(t.decode(Ids{12, 4, 0}), "é a");
}

TEST_F(TokenizerTest, IgnoreMergesEmitsWholeVocabWords) {
  // "abc" is in the vocab but no merge builds it: only ignore_merges emits it whole.
  EXPECT_EQ(load(tiny_tokenizer(Json::array({"a b"}), false)).encode("abc"), (Ids{7, 2}));
  EXPECT_EQ(load(tiny_tokenizer(Json::array({"a b"}), true)).encode("abc"), (Ids{9}));
  EXPECT_EQ(load(tiny_tokenizer(Json::array({"a b"}), true)).encode("abcd"), (Ids{7, 2, 3}));
}

TEST_F(TokenizerTest, SplitAndDigitsPreTokenizersCutBeforeMerging) {
  const auto with_pre = [](Json steps) {
    Json j = tiny_tokenizer(Json::array({"a b", "b c", "1 2"}));
    j["model"]["vocab"]["1"] = 13;
    j["model"]["vocab"]["2"] = 14;
    j["model"]["vocab"]["12"] = 15;
    steps.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}});
    j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", steps}};
    return j;
  };
  const auto split = [](const char* kind, const char* pattern, const char* behavior) {
    return Json{{"type", "Split"}, {"pattern", {{kind, pattern}}}, {"behavior", behavior}, {"invert", false}};
  };
  EXPECT_EQ(load(with_pre(Json::array())).encode("abc12"), (Ids{7, 2, 15}));
  EXPECT_EQ(load(with_pre(Json::array({split("String", "b", "Isolated")}))).encode("abc"), (Ids{0, 1, 2}));
  // "." as a String is a literal dot (absent from "abc"); as a Regex it isolates every character.
  EXPECT_EQ(load(with_pre(Json::array({split("String", ".", "Isolated")}))).encode("abc"), (Ids{7, 2}));
  EXPECT_EQ(load(with_pre(Json::array({split("Regex", ".", "Isolated")}))).encode("abc"), (Ids{0, 1, 2}));
  EXPECT_EQ(load(with_pre(Json::array({split("Regex", "b+", "Removed")}))).encode("abbc"), (Ids{0, 2}));
  EXPECT_EQ(load(with_pre(Json::array({{{"type", "Digits"}, {"individual_digits", true}}}))).encode("ab12"),
            (Ids{7, 13, 14}));
  EXPECT_EQ(load(with_pre(Json::array({{{"type", "Digits"}, {"individual_digits", false}}}))).encode("b12a"),
            (Ids{1, 15, 0}));
}

TEST(PreTokenizerDigits, SplitsEveryUnicodeNumericLikeRustIsNumeric) {
  // HF's Digits uses char::is_numeric (Nd, Nl, No): "½" (No), "²" (No), "Ⅻ" (Nl) and Arabic-Indic
  // "٣٤" (Nd) are numbers too. Found importing SmolLM2's GGUF, whose tokenizer splits digits.
  auto digits = [](bool individual) {
    PreTokenizeStep step;
    step.kind = PreTokenizeStep::Kind::kDigits;
    step.individual_digits = individual;
    return PreTokenizer({step});
  };
  const std::string text = "x½²7 ٣٤Ⅻé";
  EXPECT_EQ(digits(true).run(text),
            (std::vector<std::string>{"x", "½", "²", "7", " ", "٣", "٤", "Ⅻ", "é"}));
  EXPECT_EQ(digits(false).run(text), (std::vector<std::string>{"x", "½²7", " ", "٣٤Ⅻ", "é"}));
}

TEST_F(TokenizerTest, AddedTokensHonourTheirFlags) {
  Json j = tiny_tokenizer(Json::array({"a b"}));
  // Ids follow the vocab (13 entries): HF assigns them in order, whatever the file says, and a
  // content already in the vocab ("ab") keeps its vocab id — hence the deliberately wrong ids here.
  j["added_tokens"] = {added("<s>", 13, true), added("<l>", 14, true, {{"lstrip", true}}),
                       added("<r>", 99, false, {{"rstrip", true}}), added("ad", 16, false, {{"single_word", true}}),
                       added("<s>x", 17, true), added("é", 18, false, {{"normalized", true}}), added("ab", 50, true)};
  j["normalizer"] = {{"type", "NFC"}};
  Tokenizer t = load(j);
  EXPECT_EQ(t.encode("<s>ab"), (Ids{13, 7}));
  EXPECT_EQ(t.encode("<s>xab"), (Ids{17, 7}));             // longest match at the leftmost position
  EXPECT_EQ(t.encode("a  <l>b"), (Ids{0, 14, 1}));         // lstrip takes the spaces before it
  EXPECT_EQ(t.encode("a  <r>  b"), (Ids{0, 4, 4, 15, 1}));  // rstrip takes the spaces after it
  EXPECT_EQ(t.encode("ad"), (Ids{16}));
  EXPECT_EQ(t.encode("b ad d"), (Ids{1, 4, 16, 4, 3}));
  EXPECT_EQ(t.encode("bad"), (Ids{1, 0, 3}));              // single_word: not inside a word
  EXPECT_EQ(t.encode("e\u0301"), (Ids{18}));               // NFC(e + U+0301) = é, a normalized token
  // The ByteLevel decoder maps é (U+00E9, the stand-in of byte E9) to the lone byte E9: U+FFFD, as HF.
  EXPECT_EQ(t.decode(Ids{13, 7, 15, 18}), "<s>ab<r>\uFFFD");
  EXPECT_EQ(t.decode(Ids{13, 7, 15, 7}, SkipSpecial::kYes), "<r>");  // <r> is not special, "ab" is
  EXPECT_EQ(t.token_to_id("<l>"), 14);
  EXPECT_EQ(t.token_to_id("ab"), 7);
  EXPECT_EQ(t.token_to_id("zz"), std::nullopt);
  EXPECT_EQ(t.id_to_token(17), "<s>x");
  EXPECT_EQ(t.id_to_token(4), "Ġ");
  EXPECT_EQ(t.vocab_size(), 19);
  EXPECT_UPCYCLE_ERROR(t.id_to_token(19), "token id 19 has no token", file_.string());
  EXPECT_UPCYCLE_ERROR(t.id_to_token(-1), "token id -1 has no token", file_.string());
  EXPECT_EQ(t.encode(""), Ids{});
}

TEST_F(TokenizerTest, TemplatePostProcessorOnlyWithAddSpecial) {
  Json j = tiny_tokenizer(Json::array({"a b"}));
  j["added_tokens"] = {added("<s>", 13, true), added("</s>", 14, true)};
  j["post_processor"] = {
      {"type", "Sequence"},
      {"processors",
       {{{"type", "ByteLevel"}},
        {{"type", "TemplateProcessing"},
         {"single",
          {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
           {{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}}},
         {"pair", Json::array()},
         {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {13}}, {"tokens", {"<s>"}}}},
                             {"</s>", {{"id", "</s>"}, {"ids", {14}}, {"tokens", {"</s>"}}}}}}}}}};
  Tokenizer t = load(j);
  EXPECT_EQ(t.encode("ab"), (Ids{7}));
  EXPECT_EQ(t.encode("ab", AddSpecial::kYes), (Ids{13, 7, 14}));
  EXPECT_EQ(t.encode("", AddSpecial::kYes), (Ids{13, 14}));
  EXPECT_EQ(t.decode(t.encode("ab", AddSpecial::kYes), SkipSpecial::kYes), "ab");
  EXPECT_EQ(t.bos_id(), std::nullopt);  // no tokenizer_config.json

  test::write_bytes(dir_ / "tokenizer_config.json", R"({"bos_token": "<s>", "eos_token": {"content": "</s>"}})");
  Tokenizer from_dir = Tokenizer::load(dir_.path());
  EXPECT_EQ(from_dir.bos_id(), 13);
  EXPECT_EQ(from_dir.eos_id(), 14);
  test::write_bytes(dir_ / "tokenizer_config.json", R"({"bos_token": null, "eos_token": "<nope>"})");
  EXPECT_UPCYCLE_ERROR(Tokenizer::load(dir_.path()), "eos_token '<nope>' is not a token",
                       (dir_ / "tokenizer_config.json").string());
}

TEST_F(TokenizerTest, DecodeIsLossyUtf8LikeRust) {
  Tokenizer t = load(tiny_tokenizer(Json::array()));
  auto id_of_byte = [&](uint8_t b) {
    auto id = t.token_to_id(byte_to_unicode(b));
    return id.value_or(-1);
  };
  // Only a few bytes are in the tiny vocab, so check the lossy rule on utf8_lossy directly:
  // each maximal ill-formed subpart becomes one U+FFFD (E6 97 is a truncated 3-byte sequence;
  // F0 80: 80 cannot follow F0, so F0 and 80 are two subparts; ED A0 80 is a surrogate).
  EXPECT_EQ(utf8_lossy("\xE6\x97" "a"), "\uFFFD" "a");
  EXPECT_EQ(utf8_lossy("\xF0\x80" "b"), "\uFFFD\uFFFD" "b");
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), "\uFFFD\uFFFD\uFFFD");
  EXPECT_EQ(utf8_lossy("\xC3\xA9\xFF"), "é\uFFFD");
  EXPECT_EQ(t.decode(Ids{id_of_byte(0xC3), 0}), "\uFFFD" "a");  // Ã alone is byte C3: truncated é
  EXPECT_EQ(t.decode(Ids{0, 999, -5, 1}), "ab");                   // ids without a token are dropped
  EXPECT_UPCYCLE_ERROR(t.encode("a\xFF" "b"), "not valid UTF-8 (first bad byte at offset 1)", "");
}

TEST(ByteLevelAlphabet, MatchesGpt2BytesToUnicode) {
  // Printable Latin-1 stands for itself; the 68 others take U+0100.. in byte order.
  EXPECT_EQ(byte_to_unicode('a'), "a");
  EXPECT_EQ(byte_to_unicode(' '), "Ġ");     // byte 32 is the 33rd non-printable → U+0120
  EXPECT_EQ(byte_to_unicode('\n'), "Ċ");    // byte 10 → U+010A
  EXPECT_EQ(byte_to_unicode(0), "Ā");       // U+0100
  EXPECT_EQ(byte_to_unicode(0xAD), "Ń");    // soft hyphen, the last non-printable → U+0143
  for (int b = 0; b < 256; ++b) {
    size_t i = 0;
    EXPECT_EQ(byte_from_unicode(next_code_point(byte_to_unicode(uint8_t(b)), i)), b);
  }
  EXPECT_EQ(byte_from_unicode(U' '), -1);
  EXPECT_EQ(normalize("e\u0301 A\u030a", NormalForm::kNfc), "\u00e9 \u00c5");
  EXPECT_EQ(normalize("\u00e9", NormalForm::kNfd), "e\u0301");
  EXPECT_EQ(normalize("\ufb01", NormalForm::kNfkc), "fi");
}

TEST_F(TokenizerTest, MalformedOrUnsupportedFilesAreOneLineErrors) {
  const std::string f = file_.string();
  auto expect_load_error = [&](const std::string& text, const std::string& needle) {
    test::write_bytes(file_, text);
    EXPECT_UPCYCLE_ERROR(Tokenizer::load(file_), needle, f);
  };
  auto with = [&](const std::function<void(Json&)>& edit) {
    Json j = tiny_tokenizer(Json::array({"a b"}));
    edit(j);
    return j.dump();
  };
  expect_load_error("{\"model\": ", "tokenizer.json is not valid JSON");
  expect_load_error("[1, 2]", "must be a JSON object");
  expect_load_error(with([](Json& j) { j["model"]["type"] = "Unigram"; }), "unsupported model type Unigram");
  expect_load_error(with([](Json& j) { j["model"]["byte_fallback"] = true; }), "unsupported BPE byte_fallback true");
  expect_load_error(with([](Json& j) { j["model"]["dropout"] = 0.1; }), "unsupported BPE dropout");
  expect_load_error(with([](Json& j) { j["model"]["unk_token"] = "a"; }), "unsupported BPE unk_token");
  expect_load_error(with([](Json& j) { j["model"]["continuing_subword_prefix"] = "##"; }),
                    "unsupported BPE continuing_subword_prefix '##'");
  expect_load_error(with([](Json& j) { j["model"]["merges"] = {"a x"}; }), "uses 'x', which is not in the vocab");
  expect_load_error(with([](Json& j) { j["model"]["merges"] = {"a b c"}; }), "must be two tokens separated by one space");
  expect_load_error(with([](Json& j) { j["model"]["vocab"]["q"] = -1; }), "must be a token id");
  expect_load_error(with([](Json& j) { j["model"].erase("vocab"); }), "missing model.vocab");
  expect_load_error(with([](Json& j) { j["normalizer"] = {{"type", "Lowercase"}}; }), "unsupported normalizer Lowercase");
  expect_load_error(with([](Json& j) { j["pre_tokenizer"] = {{"type", "Metaspace"}}; }),
                    "unsupported pre_tokenizer Metaspace");
  expect_load_error(with([](Json& j) { j["pre_tokenizer"] = nullptr; }), "only byte-level BPE is supported");
  expect_load_error(with([](Json& j) {
                      j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(a"}}}, {"behavior", "Isolated"}};
                    }),
                    "does not compile");
  expect_load_error(with([](Json& j) {
                      j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Contiguous"}};
                    }),
                    "unsupported Split behavior Contiguous");
  expect_load_error(with([](Json& j) { j["post_processor"] = {{"type", "RobertaProcessing"}}; }),
                    "unsupported post_processor RobertaProcessing");
  expect_load_error(with([](Json& j) { j["decoder"] = {{"type", "WordPiece"}}; }), "unsupported decoder WordPiece");
  expect_load_error(with([](Json& j) { j["added_tokens"] = {{{"id", 3}}}; }), "missing added_tokens[0].content");
  EXPECT_UPCYCLE_ERROR(Tokenizer::load(dir_ / "missing.json"), "", (dir_ / "missing.json").string());
  fs::create_directories(dir_ / "empty_model");
  EXPECT_UPCYCLE_ERROR(Tokenizer::load(dir_ / "empty_model"), "no tokenizer.json", (dir_ / "empty_model").string());
}

}  // namespace
}  // namespace upcycle::data
