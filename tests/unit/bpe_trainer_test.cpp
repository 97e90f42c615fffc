// The BPE trainer (data/bpe_trainer.h) against independent references: Sennrich et al.'s hand example
// (merges worked out on paper), a naive trainer that recounts every pair from scratch at each step
// (exact merges and tokens on corpora full of ties, overlapping pairs and repeated results), the
// word counts of whole documents vs documents cut into chunks, and option errors. Loading the
// output in HF tokenizers is tested in bpe_trainer_parity_test.cpp.
#include <gtest/gtest.h>

#include <map>

#include "core/error.h"
#include "data/bpe_trainer.h"
#include "data/byte_level_bpe.h"
#include "support/expect_error.h"

namespace upcycle::data {
namespace {

// Token strings of the merges (left, right) in rank order.
std::vector<std::pair<std::string, std::string>> merge_strings(const BpeTrainResult& r) {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto [a, b] : r.merges) out.emplace_back(r.tokens[size_t(a)], r.tokens[size_t(b)]);
  return out;
}

TEST(BpeTrainer, SennrichHandExample) {
  // low ×5, lower ×2, newest ×6, widest ×3. Pair counts: es 9, st 9 (tie: e=101 < s=115 → es),
  // then es+t 9, lo 7 vs ow 7 (l=108 < o=111 → lo), lo+w 7; then n-e, e-w, w-est all 6: (e, w)
  // has the smallest ids, then (n, ew), then (new, est).
  const WordCounts words{{"low", 5}, {"lower", 2}, {"newest", 6}, {"widest", 3}};
  BpeTrainerOptions o;
  o.vocab_size = 256 + 7 + 1;
  const BpeTrainResult r = train_bpe(words, o);
  const std::vector<std::pair<std::string, std::string>> want = {
      {"e", "s"}, {"es", "t"}, {"l", "o"}, {"lo", "w"}, {"e", "w"}, {"n", "ew"}, {"new", "est"}};
  EXPECT_EQ(merge_strings(r), want);
  ASSERT_EQ(r.vocab_size(), o.vocab_size);
  EXPECT_EQ(r.tokens[256], "es");
  EXPECT_EQ(r.tokens[262], "newest");
  EXPECT_EQ(r.tokens[263], "<|endoftext|>");
  EXPECT_EQ(r.specials, 1);
  EXPECT_EQ(r.last_count, 6u);
  EXPECT_FALSE(r.stopped_early);
  for (int b = 0; b < 256; ++b) EXPECT_EQ(r.tokens[size_t(b)], byte_to_unicode(uint8_t(b)));
  // min_frequency 7 stops after the four merges of count ≥ 7.
  o.min_frequency = 7;
  const BpeTrainResult early = train_bpe(words, o);
  EXPECT_EQ(early.merges.size(), 4u);
  EXPECT_EQ(early.vocab_size(), 256 + 4 + 1);
  EXPECT_TRUE(early.stopped_early);
  EXPECT_EQ(early.tokens.back(), "<|endoftext|>");
}

// Recounts every pair of every word at each step; ties by (left id, right id) with specials after
// all other tokens. Returns the tokens (specials last) and merges as strings.
struct NaiveResult {
  std::vector<std::string> tokens;
  std::vector<std::pair<std::string, std::string>> merges;
};

NaiveResult naive_bpe(const WordCounts& counts, int64_t vocab_size, const std::vector<std::string>& specials,
                      uint64_t min_frequency) {
  constexpr int32_t kSpecial = 1 << 30;
  std::vector<std::string> tokens;
  std::map<std::string, int32_t> id_of;
  for (int b = 0; b < 256; ++b) tokens.push_back(byte_to_unicode(uint8_t(b))), id_of[tokens.back()] = b;
  for (size_t k = 0; k < specials.size(); ++k) id_of[specials[k]] = kSpecial + int32_t(k);
  const auto text = [&](int32_t id) { return id >= kSpecial ? specials[size_t(id - kSpecial)] : tokens[size_t(id)]; };
  std::vector<std::pair<std::vector<int32_t>, uint64_t>> words;
  for (const auto& [w, c] : counts) {
    std::vector<int32_t> s;
    for (char ch : w) s.push_back(uint8_t(ch));
    words.emplace_back(s, c);
  }
  NaiveResult out;
  while (int64_t(tokens.size() + specials.size()) < vocab_size) {
    std::map<std::pair<int32_t, int32_t>, uint64_t> pairs;
    for (const auto& [s, c] : words)
      for (size_t i = 0; i + 1 < s.size(); ++i) pairs[{s[i], s[i + 1]}] += c;
    std::pair<int32_t, int32_t> best;
    uint64_t best_count = 0;
    for (const auto& [p, c] : pairs)  // ascending pairs: the first of the highest count wins
      if (c > best_count) best = p, best_count = c;
    if (best_count == 0 || best_count < min_frequency) break;
    const std::string merged = text(best.first) + text(best.second);
    if (!id_of.count(merged)) tokens.push_back(merged), id_of[merged] = int32_t(tokens.size() - 1);
    const int32_t n = id_of[merged];
    out.merges.emplace_back(text(best.first), text(best.second));
    for (auto& [s, c] : words) {
      std::vector<int32_t> t;
      for (size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == best.first && s[i + 1] == best.second) t.push_back(n), i += 2;
        else t.push_back(s[i++]);
      }
      s = t;
    }
  }
  out.tokens = tokens;
  out.tokens.insert(out.tokens.end(), specials.begin(), specials.end());
  return out;
}

uint64_t lcg(uint64_t& state) {
  state = state * 6364136223846793005ull + 1442695040888963407ull;
  return state >> 33;
}

// Words over a tiny alphabet (ties, runs like "aaaa", merges that rebuild an existing token).
WordCounts random_words(uint64_t seed, int n, const std::vector<std::string>& alphabet) {
  WordCounts words;
  uint64_t state = seed;
  for (int k = 0; k < n; ++k) {
    std::string w;
    for (uint64_t len = 1 + lcg(state) % 12; len > 0; --len) w += alphabet[lcg(state) % alphabet.size()];
    words[w] += 1 + lcg(state) % 20;
  }
  return words;
}

TEST(BpeTrainer, MatchesNaiveRecountingTrainer) {
  int repeated_results = 0;
  for (uint64_t seed : {1u, 2u, 3u}) {
    const WordCounts words = random_words(seed, 300, {"a", "b", "c", "ab", "é", " "});
    BpeTrainerOptions o;
    o.special_tokens = {"<|endoftext|>", "ab" "c" "ab"};  // the second is also reachable by merging
    o.vocab_size = 256 + 2 + 120;
    const BpeTrainResult r = train_bpe(words, o);
    const NaiveResult want = naive_bpe(words, o.vocab_size, o.special_tokens, 1);
    EXPECT_EQ(r.tokens, want.tokens) << "seed " << seed;
    EXPECT_EQ(merge_strings(r), want.merges) << "seed " << seed;
    EXPECT_EQ(r.vocab_size(), o.vocab_size);
    ASSERT_EQ(r.merged_ids.size(), r.merges.size());
    for (size_t k = 0; k < r.merges.size(); ++k)
      EXPECT_EQ(r.tokens[size_t(r.merged_ids[k])], r.tokens[size_t(r.merges[k].first)] + r.tokens[size_t(r.merges[k].second)]);
    // Merges = new tokens + merges whose result already existed (counted independently here).
    std::map<std::string, int> seen;
    for (const auto& [a, b] : want.merges) ++seen[a + b];
    int repeats = 0;
    for (const auto& [tok, n] : seen) repeats += n - 1 + (tok == "abcab" ? 1 : 0);
    EXPECT_EQ(int64_t(r.merges.size()), o.vocab_size - 256 - 2 + repeats) << "seed " << seed;
    repeated_results += repeats;
    // min_frequency: the same prefix of merges, stopping where the naive trainer stops.
    o.min_frequency = 40;
    const BpeTrainResult early = train_bpe(words, o);
    const NaiveResult want_early = naive_bpe(words, o.vocab_size, o.special_tokens, 40);
    EXPECT_EQ(merge_strings(early), want_early.merges);
    EXPECT_EQ(early.tokens, want_early.tokens);
    EXPECT_TRUE(early.stopped_early);
  }
  EXPECT_GT(repeated_results, 0) << "the corpora should exercise merges that rebuild an existing token";
}

TEST(BpeTrainer, RunsOutOfPairs) {
  const WordCounts words{{"ab", 3}, {"x", 9}};
  BpeTrainerOptions o;
  o.vocab_size = 1000;
  o.special_tokens = {};
  const BpeTrainResult r = train_bpe(words, o);
  EXPECT_TRUE(r.stopped_early);
  EXPECT_EQ(r.vocab_size(), 257);
  EXPECT_EQ(r.last_count, 3u);
}

// A document mixing prose, code, digits, whitespace runs, unicode and special tokens.
std::string varied_document(uint64_t seed, size_t bytes) {
  const std::vector<std::string> pieces = {
      "The quick brown fox jumps over the lazy dog. ", "It's what they'RE doing, isn't it? ", "\n", "\n\n", "\r\n",
      "    ", "\t", "  \n  ", "def f(x):\n    return x + 1\n", "for (int i = 0; i < n; ++i) { sum += a[i]; }\n",
      "12345678 ", "3.14159, 2,718 ", "日本語のテキスト。", "Русский текст ", "emoji 😀👍🏽 ", "e\u0301 café ",
      "\u00a0\u3000\u2028", "<|endoftext|>", "<|pad|>", "!!!??? ", "x\ny", "A\nb", ".\nWord", " \nZ", "\n\nQ"};
  std::string out;
  uint64_t state = seed;
  while (out.size() < bytes) out += pieces[lcg(state) % pieces.size()];
  return out;
}

TEST(BpeWordCounter, ChunkedCountsEqualWholeDocumentCounts) {
  const std::string doc = varied_document(7, 200000);
  for (SplitPattern p : {SplitPattern::kGpt2, SplitPattern::kLlama3, SplitPattern::kQwen2}) {
    BpeTrainerOptions whole;
    whole.pattern = p;
    whole.vocab_size = 300;
    whole.special_tokens = {"<|endoftext|>", "<|pad|>"};
    whole.chunk_bytes = doc.size() + 1;
    BpeTrainerOptions cut = whole;
    cut.chunk_bytes = 997;
    cut.threads = 2;
    BpeWordCounter a(whole), b(cut);
    size_t calls = 0;
    a.add_document(doc, "doc");
    b.add_document(doc, "doc", [&](uint64_t) { ++calls; });
    EXPECT_GT(calls, 1u) << "the document should be counted in several batches";
    EXPECT_EQ(a.counts(), b.counts()) << split_pattern_name(p);
    EXPECT_EQ(a.pre_tokens(), b.pre_tokens());
    EXPECT_EQ(a.counts().count("<|endoftext|>"), 0u) << "special tokens are not counted as text";
  }
}

TEST(BpeTrainer, SameTokenizerJsonForAnyThreadCount) {
  const std::string doc = varied_document(11, 300000);
  std::string first;
  for (int threads : {1, 2}) {
    BpeTrainerOptions o;
    o.vocab_size = 256 + 2 + 300;
    o.special_tokens = {"<|endoftext|>", "<|pad|>"};
    o.threads = threads;
    o.chunk_bytes = 4096;
    BpeWordCounter counter(o);
    counter.add_document(doc, "doc");
    counter.add_document(doc.substr(1000, 5000), "doc2");
    const std::string json = tokenizer_json(train_bpe(counter.counts(), o), o.pattern);
    if (first.empty()) first = json;
    else EXPECT_TRUE(json == first) << "threads " << threads << " changed tokenizer.json";
  }
  EXPECT_NE(first.find("\"vocab\": {\n      \"Ā\": 0,"), std::string::npos) << "byte 0 is id 0";
}

TEST(BpeWordCounter, SplitsOnSpecialsThenPattern) {
  BpeTrainerOptions o;
  o.vocab_size = 300;
  o.special_tokens = {"<s>", "<s>x"};
  BpeWordCounter c(o);
  c.add_document("ab<s>xab <s>12345", "doc");
  // "<s>x" is the longest special at its position; llama3 groups digits by three.
  const WordCounts want{{"ab", 2}, {" ", 1}, {"123", 1}, {"45", 1}};
  EXPECT_EQ(c.counts(), want);
  EXPECT_EQ(c.pre_tokens(), 5u);
}

TEST(BpeTrainer, OptionErrors) {
  BpeTrainerOptions o;
  o.vocab_size = 256;  // 256 bytes + 1 special do not fit
  EXPECT_UPCYCLE_ERROR(validate_options(o), "too small", "");
  o.vocab_size = 257;
  EXPECT_NO_THROW(validate_options(o));
  o.special_tokens = {"<a>", ""};
  o.vocab_size = 400;
  EXPECT_UPCYCLE_ERROR(validate_options(o), "special token #2 is empty", "");
  o.special_tokens = {"<a>", "<a>"};
  EXPECT_UPCYCLE_ERROR(validate_options(o), "given twice", "");
  o.special_tokens = {"!"};
  EXPECT_UPCYCLE_ERROR(validate_options(o), "single byte", "");
  o.special_tokens = {std::string("\xff")};
  EXPECT_UPCYCLE_ERROR(validate_options(o), "not valid UTF-8", "");
  o.special_tokens = {};
  BpeWordCounter c(o);
  EXPECT_UPCYCLE_ERROR(c.add_document("ok\xc3", "in.txt"), "not valid UTF-8 (first bad byte at offset 2)", "in.txt");
}

}  // namespace
}  // namespace upcycle::data
