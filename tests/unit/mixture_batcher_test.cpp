// MixtureBatcher: windows hold the right tokens (ids = stream positions, so every window names itself),
// each window exactly once per epoch with a new order per epoch, same seed → same batches and another
// seed → others, domain frequencies close to the weights, state()/restore() through JSON text continues
// bit-identically mid-epoch, and restoring against other data is an Error.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "core/json.h"
#include "data/mixture_batcher.h"
#include "data/token_dataset.h"
#include "data/token_shard.h"
#include "support/expect_error.h"
#include "support/test_support.h"

namespace upcycle::data {
namespace {
namespace fs = std::filesystem;

constexpr uint64_t kVocab = 1 << 20;

// A dataset whose token at stream position p is base + p, cut into shards of the given sizes.
TokenDataset stream_dataset(const fs::path& dir, const std::string& domain, uint32_t base,
                            const std::vector<size_t>& shard_sizes) {
  fs::create_directories(dir);
  Json list = Json::array();
  uint32_t p = 0;
  for (size_t s = 0; s < shard_sizes.size(); ++s) {
    std::vector<uint32_t> ids;
    for (size_t i = 0; i < shard_sizes[s]; ++i) ids.push_back(base + p++);
    const std::string file = "train-" + std::to_string(s) + ".bin";
    write_token_shard(dir / file, ids, kVocab);
    list.push_back({{"file", file}, {"tokens", ids.size()}});
  }
  const Json j = {{"format", "upcycle-tokens"}, {"version", 1},       {"domain", domain},
                  {"vocab_size", kVocab},       {"splits", {{"train", list}}}};
  test::write_bytes(dir / "dataset.json", j.dump());
  return open_dataset(dir, Split::kTrain);
}

struct Batch {
  std::vector<int32_t> ids, targets, domains;
  bool operator==(const Batch&) const = default;
};

Batch draw(MixtureBatcher& b, int64_t B) {
  Batch out{std::vector<int32_t>(size_t(B * b.seq_len())), std::vector<int32_t>(size_t(B * b.seq_len())),
            std::vector<int32_t>(size_t(B))};
  b.next(B, out.ids.data(), out.targets.data(), out.domains.data());
  return out;
}

class MixtureBatcherTest : public ::testing::Test {
 protected:
  test::ScratchDir dir_;  // first: the datasets below are written into it
  // Domain a: 47 tokens → 11 windows of 4 (3 trailing tokens unused); domain b: 30 tokens → 7 windows.
  TokenDataset a_ = stream_dataset(dir_ / "a", "alpha", 0, {10, 1, 17, 19});
  TokenDataset b_ = stream_dataset(dir_ / "b", "beta", 500000, {30});
  static constexpr int64_t kL = 3;
  MixtureBatcher make(uint64_t seed, std::vector<double> weights = {1.0, 1.0}) {
    return MixtureBatcher({a_, b_}, std::move(weights), kL, seed);
  }
};

TEST_F(MixtureBatcherTest, WindowsHoldTheirTokensAndEachIsSeenOncePerEpoch) {
  MixtureBatcher b = make(7);
  const int64_t L = kL;
  std::vector<std::vector<int64_t>> seen(2);  // window indices per domain in draw order
  for (int step = 0; step < 60; ++step) {
    const Batch batch = draw(b, 3);
    for (int64_t r = 0; r < 3; ++r) {
      const int32_t d = batch.domains[size_t(r)];
      ASSERT_TRUE(d == 0 || d == 1);
      const int64_t first = batch.ids[size_t(r * L)] - (d == 0 ? 0 : 500000);
      ASSERT_EQ(first % (L + 1), 0) << "windows start at multiples of seq_len+1";
      for (int64_t t = 0; t < L; ++t) {
        EXPECT_EQ(batch.ids[size_t(r * L + t)] - batch.ids[size_t(r * L)], t);
        EXPECT_EQ(batch.targets[size_t(r * L + t)], batch.ids[size_t(r * L + t)] + 1);  // shifted by one
      }
      seen[size_t(d)].push_back(first / (L + 1));
    }
  }
  const size_t windows[2] = {11, 7};
  for (int d = 0; d < 2; ++d) {
    const auto& s = seen[size_t(d)];
    ASSERT_GE(s.size(), 3 * windows[d]) << "every domain runs several epochs in 180 draws";
    std::vector<std::vector<int64_t>> epochs;
    for (size_t e = 0; (e + 1) * windows[d] <= s.size(); ++e) {
      std::vector<int64_t> order(s.begin() + long(e * windows[d]), s.begin() + long((e + 1) * windows[d]));
      std::vector<int64_t> sorted = order;
      std::sort(sorted.begin(), sorted.end());
      std::vector<int64_t> all(windows[d]);
      for (size_t w = 0; w < windows[d]; ++w) all[w] = int64_t(w);
      EXPECT_EQ(sorted, all) << "domain " << d << " epoch " << e << " is a permutation of its windows";
      epochs.push_back(order);
    }
    EXPECT_NE(epochs[0], epochs[1]) << "a fresh order each epoch";
    EXPECT_NE(epochs[1], epochs[2]);
  }
}

TEST_F(MixtureBatcherTest, PermutationCoversAwkwardSizes) {
  // Window counts 1, 2, 4 (a power of the Feistel domain), 5 and 17 (cycle walking): one epoch each.
  for (size_t windows : {1u, 2u, 4u, 5u, 17u}) {
    SCOPED_TRACE(windows);
    test::ScratchDir dir;
    TokenDataset d = stream_dataset(dir / "x", "x", 0, {windows * 2 + 1});
    MixtureBatcher b({d}, {1.0}, 1, 99);
    std::set<int32_t> firsts;
    for (size_t k = 0; k < windows; ++k) firsts.insert(draw(b, 1).ids[0]);
    EXPECT_EQ(firsts.size(), windows);
    EXPECT_EQ(*firsts.rbegin(), int32_t(2 * (windows - 1)));
  }
}

TEST_F(MixtureBatcherTest, DeterministicPerSeed) {
  MixtureBatcher x = make(5), y = make(5), z = make(6);
  bool any_difference = false;
  for (int step = 0; step < 10; ++step) {
    const Batch bx = draw(x, 4), by = draw(y, 4), bz = draw(z, 4);
    EXPECT_EQ(bx, by) << "step " << step;
    any_difference |= !(bx == bz);
  }
  EXPECT_TRUE(any_difference) << "another seed gives other batches";
}

TEST_F(MixtureBatcherTest, DomainFrequenciesFollowTheWeights) {
  MixtureBatcher b = make(11, {1.0, 3.0});
  const Batch batch = draw(b, 20000);
  const double beta = double(std::count(batch.domains.begin(), batch.domains.end(), 1)) / 20000.0;
  EXPECT_NEAR(beta, 0.75, 0.015);  // binomial sd ≈ 0.003
  MixtureBatcher c = make(11, {5.0, 0.5});
  const Batch other = draw(c, 20000);
  EXPECT_NEAR(double(std::count(other.domains.begin(), other.domains.end(), 1)) / 20000.0, 0.5 / 5.5, 0.015);
}

TEST_F(MixtureBatcherTest, StateRestoreContinuesBitIdentically) {
  MixtureBatcher run = make(3, {2.0, 1.0});
  for (int step = 0; step < 5; ++step) draw(run, 3);  // 15 draws: mid-epoch in both domains
  const std::string saved = run.state().dump();
  const Json state = Json::parse(saved);
  EXPECT_EQ(state["draws"], 15);
  ASSERT_EQ(state["domains"].size(), 2u);
  EXPECT_EQ(state["domains"][0]["domain"], "alpha");
  EXPECT_EQ(state["domains"][1]["domain"], "beta");
  EXPECT_GT(state["domains"][0]["cursor"].get<uint64_t>() + state["domains"][0]["epoch"].get<uint64_t>() * 11 +
                state["domains"][1]["cursor"].get<uint64_t>() + state["domains"][1]["epoch"].get<uint64_t>() * 7,
            0u);
  MixtureBatcher resumed = make(3, {2.0, 1.0});
  resumed.restore(state);
  EXPECT_EQ(resumed.state().dump(), saved);
  for (int step = 0; step < 12; ++step) EXPECT_EQ(draw(resumed, 3), draw(run, 3)) << "step " << step;
}

TEST_F(MixtureBatcherTest, RestoreAgainstOtherDataIsAnError) {
  MixtureBatcher run = make(3);
  draw(run, 4);
  const Json state = run.state();
  MixtureBatcher one({a_}, {1.0}, kL, 3);
  EXPECT_UPCYCLE_ERROR(one.restore(state), "differ from the checkpoint's", "");
  MixtureBatcher swapped({b_, a_}, {1.0, 1.0}, kL, 3);
  EXPECT_UPCYCLE_ERROR(swapped.restore(state), "the data changed since the checkpoint", "");
  MixtureBatcher longer({a_, b_}, {1.0, 1.0}, 1, 3);  // other seq_len: other window counts
  EXPECT_UPCYCLE_ERROR(longer.restore(state), "the data or --seq-len changed", (dir_ / "a").string());
  Json broken = state;
  broken["domains"][0].erase("cursor");
  EXPECT_UPCYCLE_ERROR(run.restore(broken), "malformed", "");
  // A failed restore leaves the batcher as it was.
  MixtureBatcher fresh = make(3);
  draw(fresh, 4);
  EXPECT_EQ(run.state(), fresh.state());
}

TEST_F(MixtureBatcherTest, ConstructorErrors) {
  test::ScratchDir dir;
  TokenDataset tiny = stream_dataset(dir / "tiny", "tiny", 0, {3});
  EXPECT_UPCYCLE_ERROR(MixtureBatcher({a_, tiny}, {1.0, 1.0}, kL, 1), "fewer than one window of seq-len+1 = 4",
                       (dir / "tiny").string());
  EXPECT_UPCYCLE_ERROR(MixtureBatcher({a_, b_}, {1.0, 0.0}, kL, 1), "must be a positive number", (dir_ / "b").string());
}

}  // namespace
}  // namespace upcycle::data
