// Windowed evaluation and raw token files: evaluate_windows equals a hand computation (log-softmax
// in double over Transformer::forward's logits, window by window) whatever the batch size; a model
// with all-zero weights predicts uniformly, so loss = log V and perplexity = V; token files decode
// little-endian and reject bad sizes and out-of-vocabulary ids by position, naming the file.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "io/token_file.h"
#include "model/evaluate.h"
#include "model/transformer.h"
#include "support/backend_test_support.h"
#include "support/expect_error.h"
#include "support/model_test_support.h"
#include "support/test_support.h"

namespace upcycle::model {
namespace {

using backend::BackendKind;

// Three windows of seq_len + 1 = 5 tokens, V = 11.
const std::vector<int32_t> kTokens = {3, 7, 1, 10, 0, 5, 5, 2, 9, 4, 8, 6, 1, 0, 2};
constexpr int64_t kSeqLen = 4;

double hand_loss(Transformer& m) {
  const int64_t V = m.config().vocab_size, W = kSeqLen + 1;
  double sum = 0.0;
  int64_t count = 0;
  for (size_t w = 0; w < kTokens.size() / size_t(W); ++w) {
    const int32_t* win = kTokens.data() + w * size_t(W);
    const float* logits = m.forward(win, 1, kSeqLen);
    for (int64_t t = 0; t < kSeqLen; ++t) {
      const float* row = logits + t * V;
      double mx = row[0], z = 0.0;
      for (int64_t v = 0; v < V; ++v) mx = std::max(mx, double(row[v]));
      for (int64_t v = 0; v < V; ++v) z += std::exp(double(row[v]) - mx);
      sum += -(double(row[win[t + 1]]) - mx - std::log(z));
      ++count;
    }
  }
  return sum / double(count);
}

TEST(EvalWindows, EqualsHandComputationForAnyBatch) {
  for (auto kind : test::backend_kinds()) {
    auto be = backend::make_backend(kind);
    Transformer m(test::tiny_model_config(Family::kQwen2), *be);
    test::fill_random(m.params(), 3, 0.6f);
    const double want = hand_loss(m);
    for (int64_t batch : {1, 2, 3, 8}) {
      const EvalResult r = evaluate_windows(m, kTokens, kSeqLen, batch, nullptr);
      EXPECT_NEAR(r.loss, want, 1e-5 * want) << be->name() << " batch " << batch;
      EXPECT_DOUBLE_EQ(r.perplexity, std::exp(r.loss));
      EXPECT_EQ(r.tokens, 12);
      EXPECT_EQ(r.sequences, 3);
    }
    EXPECT_GT(std::fabs(want - std::log(11.0)), 0.05);  // the random model is not uniform
  }
}

TEST(EvalWindows, ZeroModelIsUniform) {
  auto be = backend::make_backend(BackendKind::kCpu);
  Transformer m(test::tiny_model_config(Family::kLlama), *be);  // parameters start at zero
  const EvalResult r = evaluate_windows(m, kTokens, kSeqLen, 2, nullptr);
  EXPECT_NEAR(r.loss, std::log(11.0), 1e-6);
  EXPECT_NEAR(r.perplexity, 11.0, 1e-5);
}

TEST(EvalTokenFile, DecodesLittleEndianAndValidates) {
  test::ScratchDir dir;
  const auto path = dir / "t.u32";
  test::write_bytes(path, test::bytes_of({1, 0, 0, 0, 0x10, 0x02, 0, 0, 7, 0, 0, 0}));  // 1, 528, 7
  EXPECT_EQ(token_file_count(path), 3u);
  EXPECT_EQ(read_token_file(path, 3, 1000), (std::vector<int32_t>{1, 528, 7}));
  EXPECT_EQ(read_token_file(path, 1, 2), std::vector<int32_t>{1});  // only the prefix is checked
  EXPECT_UPCYCLE_ERROR(read_token_file(path, 3, 528), "token id 528 at position 1 is out of range", path.string());
  test::write_bytes(path, test::bytes_of({0xff, 0xff, 0xff, 0xff}));
  EXPECT_UPCYCLE_ERROR(read_token_file(path, 1, 100), "token id 4294967295 at position 0", path.string());
  test::write_bytes(path, test::bytes_of({1, 0, 0, 0, 2, 0}));
  EXPECT_UPCYCLE_ERROR(token_file_count(path), "size 6 bytes is not a multiple of 4", path.string());
  EXPECT_UPCYCLE_ERROR(token_file_count(dir / "missing"), "cannot open token file", (dir / "missing").string());
  EXPECT_UPCYCLE_ERROR(token_file_count(dir.path()), "not a regular file", dir.path().string());
}

}  // namespace
}  // namespace upcycle::model
