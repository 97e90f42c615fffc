// The short fuzz run of CI: every target (fuzz_targets.h) gets its seed corpus (tests/fuzz/corpus/<name>/
// plus real files read in place: the shared tokenizers, the mergekit examples, the shipped study specs)
// and a fixed number of seeded mutations of it (bit flips, interesting bytes, deleted, duplicated or
// spliced ranges, truncations, digit runs replaced by huge or negative numbers), bounded by a time
// budget per target. A finding aborts with the input printed (fuzz_finding) or fails the test with the
// escaping exception; replay it with the libFuzzer build: fuzz_<name> FILE.
// Non-goal: coverage guidance (that is `make fuzz`); this keeps the parsers honest under ASan+UBSan.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <exception>
#include <fstream>
#include <iterator>
#include <string>
#include <typeinfo>
#include <vector>

#include "fuzz_targets.h"

namespace upcycle::fuzz {
namespace {
namespace fs = std::filesystem;

constexpr int kMutationsPerTarget = 3000;
constexpr double kSecondsPerTarget = 2.5;  // under ASan on a shared CI core the count may not be reached
constexpr size_t kLargeSeed = 64 * 1024;   // real tokenizers (MBs): replayed plus a few cheap mutations

struct SplitMix {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return n == 0 ? 0 : size_t(next() % n); }
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<std::string> seeds_of(const FuzzTarget& t) {
  std::vector<std::string> seeds;
  std::vector<fs::path> files;
  const fs::path corpus = fs::path(UPCYCLE_SOURCE_DIR) / "tests/fuzz/corpus" / t.name;
  if (fs::is_directory(corpus))
    for (const auto& e : fs::directory_iterator(corpus)) files.push_back(e.path());
  for (const auto& p : t.real_seeds(UPCYCLE_SHARED_DATA_DIR, UPCYCLE_SOURCE_DIR)) files.push_back(p);
  std::sort(files.begin(), files.end());
  for (const auto& p : files) {
    EXPECT_TRUE(fs::is_regular_file(p)) << "seed file missing: " << p;
    seeds.push_back(read_file(p));
  }
  return seeds;
}

const char* const kNumbers[] = {"0", "-1", "18446744073709551615", "18446744073709551616", "9223372036854775807",
                                "1e308", "-1e308", "4294967296", "1000000000000", "1000000", "1.5", "NaN"};
const char kBytes[] = {'0', '9', '-', '"', '{', '}', '[', ']', ',', ':', '\n', '\0', '\xff', 'e', '.', ' ', '\\'};

void mutate_once(std::string& s, const std::vector<std::string>& seeds, SplitMix& rng) {
  const size_t n = s.size();
  switch (rng.below(8)) {
    case 0:
      if (n) s[rng.below(n)] ^= char(1u << rng.below(8));
      break;
    case 1:
      if (n) s[rng.below(n)] = kBytes[rng.below(sizeof kBytes)];
      break;
    case 2:
      if (n) {
        const size_t at = rng.below(n);
        s.erase(at, 1 + rng.below(std::min<size_t>(n - at, 64)));
      }
      break;
    case 3:
      if (n) {
        const size_t at = rng.below(n), len = 1 + rng.below(std::min<size_t>(n - at, 256));
        s.insert(rng.below(n + 1), s.substr(at, len));
      }
      break;
    case 4:
      s.resize(rng.below(n + 1));
      break;
    case 5:
      s.insert(rng.below(n + 1), kNumbers[rng.below(std::size(kNumbers))]);
      break;
    case 6: {
      const std::string& other = seeds[rng.below(seeds.size())];
      if (other.size() < kLargeSeed) s = s.substr(0, rng.below(n + 1)) + other.substr(rng.below(other.size() + 1));
      break;
    }
    default: {  // a digit run becomes a hostile number: sizes, counts, offsets, shapes
      std::vector<size_t> digits;
      for (size_t i = 0; i < n; ++i)
        if (s[i] >= '0' && s[i] <= '9' && (i == 0 || s[i - 1] < '0' || s[i - 1] > '9')) digits.push_back(i);
      if (digits.empty()) break;
      const size_t at = digits[rng.below(digits.size())];
      size_t end = at;
      while (end < n && s[end] >= '0' && s[end] <= '9') ++end;
      s.replace(at, end - at, kNumbers[rng.below(std::size(kNumbers))]);
    }
  }
}

void run_one(const FuzzTarget& t, const std::string& input) {
  const auto* data = reinterpret_cast<const uint8_t*>(input.data());
  set_current_input(data, input.size());
  try {
    t.fn(data, input.size());
  } catch (const std::exception& e) {
    ADD_FAILURE() << t.name << ": " << typeid(e).name() << " escaped: " << e.what() << "\ninput: " << input.substr(0, 2048);
  }
  set_current_input(nullptr, 0);
}

class FuzzReplay : public ::testing::TestWithParam<size_t> {};

TEST_P(FuzzReplay, SeedsAndMutationsOnlyFailWithError) {
  const FuzzTarget& t = all_targets()[GetParam()];
  const std::vector<std::string> seeds = seeds_of(t);
  ASSERT_FALSE(seeds.empty()) << "no seeds for " << t.name << " (tests/fuzz/corpus/" << t.name << "/)";
  for (const auto& s : seeds) run_one(t, s);
  SplitMix rng{0x5eedull + GetParam()};
  const auto start = std::chrono::steady_clock::now();
  int done = 0;
  for (; done < kMutationsPerTarget && !HasFailure(); ++done) {
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > kSecondsPerTarget) break;
    const std::string& seed = seeds[size_t(done) % seeds.size()];
    std::string input = seed;
    if (seed.size() >= kLargeSeed) {
      if (done >= int(2 * seeds.size())) continue;  // large seeds: two cheap mutations each
      mutate_once(input, seeds, rng);
    } else {
      for (size_t k = 1 + rng.below(3); k > 0; --k) mutate_once(input, seeds, rng);
    }
    run_one(t, input);
  }
  RecordProperty("mutations", done);
  std::printf("%s: %zu seeds, %d mutations\n", t.name, seeds.size(), done);
}

// The targets keep fixed files (shards) in the scratch directory across tests: remove it once, at exit.
class ScratchCleanup : public ::testing::Environment {
 public:
  void TearDown() override { remove_scratch(); }
};
const auto* const kCleanup = ::testing::AddGlobalTestEnvironment(new ScratchCleanup);

INSTANTIATE_TEST_SUITE_P(Targets, FuzzReplay, ::testing::Range<size_t>(0, all_targets().size()),
                         [](const auto& info) { return std::string(all_targets()[info.param].name); });

}  // namespace
}  // namespace upcycle::fuzz
