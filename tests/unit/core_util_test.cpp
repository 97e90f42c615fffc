// core utilities: size parsing/printing, the counter-based RNG (determinism, independence of
// chunking, distribution moments), and atomic output directories.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <vector>

#include "core/error.h"
#include "core/file_util.h"
#include "core/rng.h"
#include "core/units.h"
#include "io/output_dir.h"
#include "support/test_support.h"

namespace upcycle {
namespace {
namespace fs = std::filesystem;

TEST(Units, ParsesSizesLikeHf) {
  EXPECT_EQ(parse_byte_size("5GB", "x"), 5'000'000'000ull);
  EXPECT_EQ(parse_byte_size("2GiB", "x"), 2ull << 30);
  EXPECT_EQ(parse_byte_size("1.5MB", "x"), 1'500'000ull);
  EXPECT_EQ(parse_byte_size("100kb", "x"), 100'000ull);
  EXPECT_EQ(parse_byte_size("4096", "x"), 4096ull);
  for (const char* bad : {"", "GB", "5XB", "-1GB", "0", "1..2GB"})
    EXPECT_THROW(parse_byte_size(bad, "--max-shard-size"), Error) << bad;
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(4'980'000'000ull), "4.98 GB");
  EXPECT_EQ(format_count(6'740'000'000ull), "6.74B");
  EXPECT_EQ(format_count(12), "12");
}

TEST(CounterRng, PureFunctionOfSeedStreamAndCounter) {
  CounterRng a(1, "w"), b(1, "w"), c(2, "w"), d(1, "v");
  EXPECT_EQ(a.bits(5), b.bits(5));
  EXPECT_NE(a.bits(5), c.bits(5));
  EXPECT_NE(a.bits(5), d.bits(5));
  EXPECT_NE(a.bits(5), a.bits(6));
  // fill_normal over any split equals element-wise normal(i).
  std::vector<float> whole(101), parts(101);
  a.fill_normal(whole.data(), 3, 101, 0.5f, 2.0f);
  a.fill_normal(parts.data(), 3, 50, 0.5f, 2.0f);
  a.fill_normal(parts.data() + 50, 53, 51, 0.5f, 2.0f);
  for (int i = 0; i < 101; ++i) {
    EXPECT_EQ(whole[i], parts[i]) << i;
    EXPECT_EQ(whole[i], 0.5f + 2.0f * a.normal(3 + i)) << i;
  }
}

TEST(CounterRng, MomentsAreStandardNormalAndUniform) {
  CounterRng rng(42, "moments");
  const int n = 400000;
  double s1 = 0, s2 = 0, s4 = 0, u = 0;
  for (int i = 0; i < n; ++i) {
    double z = rng.normal(i);
    s1 += z;
    s2 += z * z;
    s4 += z * z * z * z;
    u += rng.uniform(i);
  }
  EXPECT_NEAR(s1 / n, 0.0, 0.01);
  EXPECT_NEAR(s2 / n, 1.0, 0.01);
  EXPECT_NEAR(s4 / n, 3.0, 0.05);  // kurtosis of a normal
  EXPECT_NEAR(u / n, 0.5, 0.003);
}

TEST(StagedDir, CommitPublishesAndAbandonLeavesNothing) {
  test::ScratchDir root;
  {
    StagedDir staged(root / "out", Overwrite::kRefuse);
    write_text_file(staged.path() / "a.txt", "hello");
    EXPECT_FALSE(fs::exists(root / "out"));
    staged.commit();
  }
  EXPECT_EQ(test::read_bytes(root / "out" / "a.txt"), "hello");
  {
    StagedDir abandoned(root / "other", Overwrite::kRefuse);
    write_text_file(abandoned.path() / "b.txt", "x");
  }
  EXPECT_FALSE(fs::exists(root / "other"));
  EXPECT_EQ(std::distance(fs::directory_iterator(root.path()), fs::directory_iterator()), 1);
}

TEST(StagedDir, RefusesExistingUnlessReplacing) {
  test::ScratchDir root;
  fs::create_directory(root / "out");
  test::write_bytes(root / "out" / "old.txt", "old");
  EXPECT_THROW(StagedDir(root / "out", Overwrite::kRefuse), Error);
  {
    StagedDir staged(root / "out", Overwrite::kReplace);
    write_text_file(staged.path() / "new.txt", "new");
    staged.commit();
  }
  EXPECT_FALSE(fs::exists(root / "out" / "old.txt"));
  EXPECT_EQ(test::read_bytes(root / "out" / "new.txt"), "new");
  EXPECT_EQ(std::distance(fs::directory_iterator(root.path()), fs::directory_iterator()), 1);
}

TEST(StagedDir, ReportsBadParents) {
  test::ScratchDir root;
  test::write_bytes(root / "file", "x");
  try {
    StagedDir staged(root / "file" / "out", Overwrite::kRefuse);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("not a directory"), std::string::npos) << e.message();
  }
  EXPECT_THROW(StagedDir(root / "missing" / "out", Overwrite::kRefuse), Error);
}

}  // namespace
}  // namespace upcycle
