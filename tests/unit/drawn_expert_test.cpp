// The pieces of convert's row-by-row drawn experts that the pinned digests (convert_pinned_bytes_test)
// cannot isolate: matrix statistics give the bits of the plain 64-chunk serial sums for any length and
// from the stored dtype; DrawnExpert gives the same bytes for any split of its rows; parallel_write puts
// every block at its offset at any thread count and reports a failing block's error.
#include <gtest/gtest.h>
#include <omp.h>

#include <bit>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/rng.h"
#include "io/checkpoint.h"
#include "io/parallel_write.h"
#include "recipes/drawn_expert.h"
#include "support/test_support.h"

namespace upcycle::recipes {
namespace {

// The statistics as first written: 64 chunks, each summed serially in index order, then the chunks in order.
MatrixStats serial_chunk_stats(const std::vector<float>& w) {
  const size_t n = w.size();
  double total = 0, total_sq = 0;
  for (size_t c = 0; c < 64; ++c) {
    double s = 0, q = 0;
    for (size_t i = n * c / 64; i < n * (c + 1) / 64; ++i) s += w[i], q += double(w[i]) * w[i];
    total += s, total_sq += q;
  }
  MatrixStats st;
  if (n == 0) return st;
  st.mean = total / double(n);
  st.std = std::sqrt(std::max(0.0, total_sq / double(n) - st.mean * st.mean));
  return st;
}

TEST(MatrixStats, EqualTheSerialChunkSumsBitForBitFromFp32AndBf16) {
  const int restore = omp_get_max_threads();
  for (size_t n : {size_t{0}, size_t{1}, size_t{63}, size_t{64}, size_t{65}, size_t{4096 * 64 + 13}, size_t{300001}}) {
    std::vector<float> w(n);
    CounterRng(n, "stats").fill_normal(w.data(), 0, n, 0.3f, 2.0f);
    for (float& v : w) v = bf16_to_f32(f32_to_bf16(v));  // exactly representable in bf16
    RawMatrix raw{DType::kBF16, 1, int64_t(n), std::vector<std::byte>(2 * n)};
    f32_to_bf16_n(w.data(), raw.bytes.data(), n);
    const MatrixStats want = serial_chunk_stats(w);
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      const MatrixStats f32 = matrix_stats(w.data(), n), bf16 = matrix_stats(raw);
      EXPECT_EQ(std::bit_cast<uint64_t>(f32.mean), std::bit_cast<uint64_t>(want.mean)) << n;
      EXPECT_EQ(std::bit_cast<uint64_t>(f32.std), std::bit_cast<uint64_t>(want.std)) << n;
      EXPECT_EQ(std::bit_cast<uint64_t>(bf16.mean), std::bit_cast<uint64_t>(want.mean)) << n;
      EXPECT_EQ(std::bit_cast<uint64_t>(bf16.std), std::bit_cast<uint64_t>(want.std)) << n;
    }
  }
  omp_set_num_threads(restore);
}

RawMatrix random_bf16(int64_t rows, int64_t cols) {
  std::vector<float> w(size_t(rows * cols));
  CounterRng(1, "dense").fill_normal(w.data(), 0, w.size(), 0.0f, 0.02f);
  RawMatrix raw{DType::kBF16, rows, cols, std::vector<std::byte>(w.size() * 2)};
  f32_to_bf16_n(w.data(), raw.bytes.data(), w.size());
  return raw;
}

TEST(DrawnExpert, AnySplitOfTheRowsGivesTheSameBytes) {
  const int64_t F = 90, D = 33;
  for (FfnMatrix m : {FfnMatrix::kGate, FfnMatrix::kDown})
    for (ExpertInit init : {ExpertInit::kDrop, ExpertInit::kNoise, ExpertInit::kRandom}) {
      const RawMatrix raw = m == FfnMatrix::kDown ? random_bf16(D, F) : random_bf16(F, D);
      DrawnExpertSpec spec;
      spec.dense = &raw, spec.m = m, spec.D = D;
      for (int64_t j = 1; j < F; j += 2) spec.neurons.push_back(j);  // every other neuron: a real gather
      spec.width = int64_t(spec.neurons.size());
      spec.init.init = init, spec.init.rng_version = RngVersion::kV2, spec.stats = matrix_stats(raw);
      spec.prefix = "layer1.expert2", spec.tensor_name = "t", spec.out = DType::kF16;
      const DrawnExpert expert(spec);
      std::vector<std::byte> whole(size_t(expert.rows()) * expert.row_bytes()), pieces(whole.size());
      expert.fill(0, expert.rows(), whole.data());
      for (int64_t r = 0; r < expert.rows(); r += 7) {
        const int64_t count = std::min<int64_t>(7, expert.rows() - r);
        expert.fill(r, count, pieces.data() + size_t(r) * expert.row_bytes());
      }
      EXPECT_TRUE(whole == pieces) << int(m) << " " << int(init);
    }
}

TEST(ParallelWrite, EveryBlockLandsAtItsOffsetAndAFailureIsRethrown) {
  const int restore = omp_get_max_threads();
  test::ScratchDir tmp;
  const int64_t rows = 3000, cols = 300;  // 1.8 MB of f16: several 512 KB blocks
  const size_t row_bytes = size_t(cols) * 2;
  auto fill = [&](int64_t first, int64_t count, std::byte* out) {
    for (int64_t r = first; r < first + count; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        const uint16_t v = uint16_t(r * 7 + c);
        std::memcpy(out + size_t(r - first) * row_bytes + size_t(c) * 2, &v, 2);
      }
  };
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    const auto dir = tmp / ("t" + std::to_string(threads));
    std::filesystem::create_directories(dir);
    {
      CheckpointWriter writer(dir, {{"x", DType::kF16, {rows + 1, cols}}});
      writer.write("x", std::vector<std::byte>(row_bytes, std::byte{0}));  // row 0 by hand: the offset counts
      write_rows_in_parallel(writer, "x", row_bytes, rows, row_bytes, fill);
      writer.finish();
    }
    Checkpoint ckpt = Checkpoint::open(dir);
    const auto& ref = ckpt.tensors().at("x");
    auto bytes = ref.file->data(*ref.info);
    std::vector<std::byte> want(size_t(rows) * row_bytes);
    fill(0, rows, want.data());
    EXPECT_TRUE(std::equal(want.begin(), want.end(), bytes.begin() + long(row_bytes))) << threads << " threads";
  }
  omp_set_num_threads(2);
  std::filesystem::create_directories(tmp / "fail");
  CheckpointWriter writer(tmp / "fail", {{"x", DType::kF16, {rows, cols}}});
  EXPECT_THROW(write_rows_in_parallel(writer, "x", 0, rows, row_bytes,
                                      [](int64_t first, int64_t, std::byte*) {
                                        if (first > 0) throw Error("block failed", "test");
                                      }),
               Error);
  omp_set_num_threads(restore);
}

}  // namespace
}  // namespace upcycle::recipes
