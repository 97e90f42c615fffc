// Backend memory through Buffer<T>, on every registered backend: fresh and reset buffers read as
// zeros, upload/download round-trip exact bytes, copy moves bytes between buffers, moves transfer
// ownership (the source is left empty), and a size mismatch is a caught bug rather than an overrun.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "backend/buffer.h"
#include "support/backend_test_support.h"

namespace upcycle::backend {
namespace {

class BackendBuffer : public ::testing::TestWithParam<BackendKind> {
 protected:
  std::unique_ptr<Backend> be_ = make_backend(GetParam());
};

TEST_P(BackendBuffer, FreshBufferIsZeroAndRoundTrips) {
  Buffer<float> a(*be_, 1000);
  EXPECT_EQ(a.size(), 1000u);
  EXPECT_EQ(a.to_host(), std::vector<float>(1000, 0.0f));
  std::vector<float> host(1000);
  for (size_t i = 0; i < host.size(); ++i) host[i] = float(i) * 0.5f - 7.0f;
  host[3] = -0.0f;
  a.upload(host);
  const std::vector<float> back = a.to_host();
  EXPECT_EQ(std::memcmp(back.data(), host.data(), host.size() * sizeof(float)), 0);  // -0.0 kept
  a.zero();
  EXPECT_EQ(a.to_host(), std::vector<float>(1000, 0.0f));
}

TEST_P(BackendBuffer, ResetZeroesAndResizes) {
  Buffer<int32_t> ids(*be_, 4);
  ids.upload(std::vector<int32_t>{1, 2, 3, 4});
  ids.reset(*be_, 4);  // same size: zeroed in place
  EXPECT_EQ(ids.to_host(), std::vector<int32_t>(4, 0));
  ids.reset(*be_, 9);
  EXPECT_EQ(ids.to_host(), std::vector<int32_t>(9, 0));
}

TEST_P(BackendBuffer, CopyAndMove) {
  Buffer<double> a(*be_, 3), b(*be_, 3);
  a.upload(std::vector<double>{1.5, -2.25, 1e300});
  be_->copy(b.data(), a.data(), 3 * sizeof(double));
  be_->synchronize();
  EXPECT_EQ(b.to_host(), (std::vector<double>{1.5, -2.25, 1e300}));
  Buffer<double> c = std::move(a);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(c.to_host(), (std::vector<double>{1.5, -2.25, 1e300}));
  Buffer<double> empty;
  EXPECT_TRUE(empty.to_host().empty());
}

TEST_P(BackendBuffer, SizeMismatchIsABug) {
  Buffer<float> a(*be_, 2);
  std::vector<float> wrong(3);
  EXPECT_ANY_THROW(a.upload(wrong));
  EXPECT_ANY_THROW(a.download(wrong));
}

INSTANTIATE_TEST_SUITE_P(Backends, BackendBuffer, ::testing::ValuesIn(test::backend_kinds()), test::BackendTestName());

}  // namespace
}  // namespace upcycle::backend
