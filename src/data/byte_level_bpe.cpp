// Byte-level alphabet and rank-ordered BPE merging (see byte_level_bpe.h).
#include "data/byte_level_bpe.h"

#include <array>
#include <queue>

#include "data/unicode_text.h"

namespace upcycle::data {
namespace {

constexpr size_t kCacheCapacity = 1 << 16;  // entries; beyond it new words are merged uncached
constexpr size_t kMaxCachedWordBytes = 256;

struct ByteTables {
  std::array<std::string, 256> to_unicode;
  std::array<int16_t, 324> from_unicode;  // stand-ins are < 256 + 68
};

// GPT-2's table: printable Latin-1 bytes stand for themselves, the other 68 bytes take the code
// points 256, 257, ... in byte order, so every byte becomes a visible, non-space character.
const ByteTables& tables() {
  static const ByteTables t = [] {
    ByteTables t;
    t.from_unicode.fill(-1);
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const char32_t cp = printable ? char32_t(b) : char32_t(next++);
      append_utf8(t.to_unicode[size_t(b)], cp);
      t.from_unicode[cp] = int16_t(b);
    }
    return t;
  }();
  return t;
}

}  // namespace

const std::string& byte_to_unicode(uint8_t b) { return tables().to_unicode[b]; }

int byte_from_unicode(char32_t cp) { return cp < tables().from_unicode.size() ? tables().from_unicode[cp] : -1; }

std::string to_byte_level(std::string_view raw) {
  std::string out;
  out.reserve(raw.size() * 2);
  for (char c : raw) out += byte_to_unicode(static_cast<uint8_t>(c));
  return out;
}

BytePairModel::BytePairModel(std::unordered_map<std::string, int32_t> vocab, const std::vector<BpeMerge>& merges,
                             std::vector<int32_t> merged_ids, bool ignore_merges)
    : vocab_(std::move(vocab)), ignore_merges_(ignore_merges) {
  merges_.reserve(merges.size());
  // A pair listed twice keeps its last rank, as HF's HashMap collect does.
  for (size_t r = 0; r < merges.size(); ++r)
    merges_[pair_key(merges[r].left, merges[r].right)] = MergeValue{uint32_t(r), merged_ids[r]};
}

BytePairModel::BytePairModel(BytePairModel&& other) noexcept
    : vocab_(std::move(other.vocab_)), merges_(std::move(other.merges_)), ignore_merges_(other.ignore_merges_) {}

BytePairModel& BytePairModel::operator=(BytePairModel&& other) noexcept {
  vocab_ = std::move(other.vocab_);
  merges_ = std::move(other.merges_);
  ignore_merges_ = other.ignore_merges_;
  std::lock_guard lock(cache_mutex_);
  cache_.clear();
  return *this;
}

void BytePairModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (ignore_merges_) {
    if (auto it = vocab_.find(std::string(word)); it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard lock(cache_mutex_);
    if (auto it = cache_.find(std::string(word)); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  merge_word(word, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard lock(cache_mutex_);
    if (cache_.size() < kCacheCapacity) cache_.emplace(std::string(word), std::move(ids));
  }
}

// HF's Word::merge_all: a min-heap of candidate merges keyed (rank, position); symbols form a
// doubly linked list over the initial code points, and merged-away symbols get length 0.
void BytePairModel::merge_word(std::string_view word, std::vector<int32_t>& out) const {
  struct Symbol {
    int32_t id;
    int32_t prev, next;
    bool alive;
  };
  std::vector<Symbol> sym;
  std::string piece;
  for (size_t i = 0; i < word.size();) {
    const size_t start = i;
    next_code_point(word, i);
    piece.assign(word.substr(start, i - start));
    auto it = vocab_.find(piece);
    if (it == vocab_.end()) continue;  // no unk token: HF drops characters outside the vocab
    const int32_t n = int32_t(sym.size());
    sym.push_back(Symbol{it->second, n - 1, n + 1, true});
  }
  if (sym.empty()) return;
  sym.back().next = -1;

  struct Candidate {
    uint32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  const auto lookup = [&](int32_t a, int32_t b) -> const MergeValue* {
    auto it = merges_.find(pair_key(a, b));
    return it == merges_.end() ? nullptr : &it->second;
  };
  for (int32_t p = 0; p + 1 < int32_t(sym.size()); ++p)
    if (const MergeValue* m = lookup(sym[p].id, sym[p + 1].id)) queue.push({m->rank, p, m->new_id});

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& cur = sym[size_t(top.pos)];
    if (!cur.alive || cur.next < 0) continue;
    const Symbol right = sym[size_t(cur.next)];
    const MergeValue* m = lookup(cur.id, right.id);
    if (!m || m->new_id != top.new_id) continue;  // stale entry
    cur.id = top.new_id;
    sym[size_t(cur.next)].alive = false;
    cur.next = right.next;
    if (right.next >= 0) sym[size_t(right.next)].prev = top.pos;
    if (cur.prev >= 0)
      if (const MergeValue* l = lookup(sym[size_t(cur.prev)].id, cur.id)) queue.push({l->rank, cur.prev, l->new_id});
    if (cur.next >= 0)
      if (const MergeValue* r = lookup(cur.id, sym[size_t(cur.next)].id)) queue.push({r->rank, top.pos, r->new_id});
  }
  for (int32_t p = 0; p >= 0; p = sym[size_t(p)].next) out.push_back(sym[size_t(p)].id);
}

}  // namespace upcycle::data
