// DensePrefetch hands out exactly what read_raw reads, whether the request is the one read ahead, out
// of order, or not in the announced order at all, and a failed read is reported by the take() that
// wanted the matrix, naming it.
#include <gtest/gtest.h>

#include "core/error.h"
#include "recipes/dense_prefetch.h"
#include "support/mergekit_test_support.h"
#include "support/test_support.h"

namespace upcycle::recipes {
namespace {

using Key = DensePrefetch::Key;
using test::write_tiny_checkpoint;

void expect_same(const RawMatrix& got, const RawMatrix& want, const std::string& what) {
  EXPECT_EQ(got.dtype, want.dtype) << what;
  EXPECT_EQ(got.rows, want.rows) << what;
  EXPECT_EQ(got.cols, want.cols) << what;
  EXPECT_TRUE(got.bytes == want.bytes) << what;
}

TEST(DensePrefetch, TakesWhatReadRawReadsInAnyOrder) {
  test::ScratchDir tmp;
  write_tiny_checkpoint(tmp / "a", Family::kLlama, 3);
  write_tiny_checkpoint(tmp / "b", Family::kLlama, 4);
  const auto sources = open_sources({tmp / "a", tmp / "b"});
  const Key gate0{0, "model.layers.0.mlp.gate_proj.weight"}, down0b{1, "model.layers.0.mlp.down_proj.weight"},
      up1{0, "model.layers.1.mlp.up_proj.weight"}, gate1b{1, "model.layers.1.mlp.gate_proj.weight"};
  DensePrefetch prefetch(sources);
  prefetch.expect({gate0, down0b, up1, gate1b});
  for (const Key& k : {gate0, down0b, gate1b, up1, gate0, Key{1, "model.layers.0.mlp.up_proj.weight"}})
    expect_same(prefetch.take(k), read_raw(sources[k.source], k.name), k.name);
  EXPECT_NE(read_raw(sources[0], gate0.name).bytes, read_raw(sources[1], gate0.name).bytes);  // sources differ
}

TEST(DensePrefetch, AFailedReadIsReportedByTheTakeThatWantsIt) {
  test::ScratchDir tmp;
  write_tiny_checkpoint(tmp / "a", Family::kLlama, 3);
  const auto sources = open_sources({tmp / "a"});
  DensePrefetch prefetch(sources);
  const Key first{0, "model.layers.0.mlp.gate_proj.weight"}, missing{0, "model.layers.0.mlp.no_such.weight"};
  prefetch.expect({first, missing});
  expect_same(prefetch.take(first), read_raw(sources[0], first.name), first.name);
  try {
    prefetch.take(missing);
    FAIL() << "a missing weight was taken";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no_such"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace upcycle::recipes
