// attention_decode against attention_forward over the whole sequence: for awkward sizes (S = 10,
// GQA groups of 1, 3 and 6, windows 1, 3 and longer than the sequence) every split of a sequence into
// cached past + new block must reproduce forward's rows for the new positions, on every registered
// backend. ref: bitwise (forward
// and decode run the same double loops). cpu: within kRtolCpu of its own forward, not bitwise — the
// forward is tiled over sgemm (scores and P·V of 64 query rows at once, vector exp) while decode keeps
// a per-row kernel, so sums run in a different order; measured ≤ 1e-7 (all_close's relative measure)
// on these cases. Decode itself stays deterministic (checked: the same call twice is bitwise equal).
// cpu decode vs ref forward: within kRtol. Cache rows beyond past+Tn hold NaN, so reading them would show.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "support/backend_test_support.h"

namespace upcycle::backend {
namespace {

using test::all_close;
using test::random_floats;

constexpr double kRtol = 1e-5;
constexpr double kRtolCpu = 1e-6;  // cpu decode vs cpu forward (different summation order, see above)

struct DecodeCase {
  int64_t T, H, KV, S, window;
};

// Rows [past, past+Tn) of out_TQ = attention_forward over the full sequence, via attention_decode.
std::vector<float> decode_rows(Backend& be, const DecodeCase& c, const std::vector<float>& q, const std::vector<float>& k,
                               const std::vector<float>& v, int64_t past, int64_t Tn) {
  const int64_t Q = c.H * c.S, K = c.KV * c.S, Tmax = c.T + 4;
  // Cache: rows 0..past+Tn−1 from k/v, the rest NaN (must never be read).
  std::vector<float> k_cache(size_t(Tmax * K), std::numeric_limits<float>::quiet_NaN()), v_cache = k_cache;
  std::copy_n(k.begin(), (past + Tn) * K, k_cache.begin());
  std::copy_n(v.begin(), (past + Tn) * K, v_cache.begin());
  AttentionShape sh{.batch = 1, .seq_len = Tn, .heads = c.H, .kv_heads = c.KV, .head_dim = c.S, .window = c.window,
                    .scale = 1.0f / std::sqrt(float(c.S))};
  std::vector<float> out(size_t(Tn * Q), -7.0f);
  be.attention_decode(out.data(), q.data() + past * Q, k_cache.data(), v_cache.data(), past, sh);
  return out;
}

TEST(AttentionDecode, MatchesFullForwardForEverySplit) {
  auto ref = make_backend(BackendKind::kRef);
  for (BackendKind kind : test::non_ref_backend_kinds()) {
    auto be = make_backend(kind);
    SCOPED_TRACE(std::string(be->name()));
    uint64_t seed = 900;
    for (const DecodeCase& c : {DecodeCase{13, 6, 2, 10, 0}, DecodeCase{13, 6, 6, 10, 3}, DecodeCase{11, 6, 1, 10, 1},
                                DecodeCase{9, 3, 1, 6, 50}, DecodeCase{7, 2, 2, 4, 4}}) {
      const int64_t Q = c.H * c.S, K = c.KV * c.S;
      const auto q = random_floats(size_t(c.T * Q), seed++, 2.0f), k = random_floats(size_t(c.T * K), seed++, 2.0f);
      const auto v = random_floats(size_t(c.T * K), seed++);
      AttentionShape full{.batch = 1, .seq_len = c.T, .heads = c.H, .kv_heads = c.KV, .head_dim = c.S,
                          .window = c.window, .scale = 1.0f / std::sqrt(float(c.S))};
      std::vector<float> out_ref(q.size()), out_be(q.size()), lse(size_t(c.T * c.H));
      ref->attention_forward(out_ref.data(), lse.data(), q.data(), k.data(), v.data(), full);
      be->attention_forward(out_be.data(), lse.data(), q.data(), k.data(), v.data(), full);
      for (int64_t past = 0; past < c.T; ++past) {
        for (int64_t Tn : {int64_t(1), c.T - past}) {
          SCOPED_TRACE("T=" + std::to_string(c.T) + " KV=" + std::to_string(c.KV) + " window=" +
                       std::to_string(c.window) + " past=" + std::to_string(past) + " Tn=" + std::to_string(Tn));
          const std::vector<float> want_ref(out_ref.begin() + past * Q, out_ref.begin() + (past + Tn) * Q);
          const std::vector<float> want_be(out_be.begin() + past * Q, out_be.begin() + (past + Tn) * Q);
          const auto got_ref = decode_rows(*ref, c, q, k, v, past, Tn);
          const auto got_be = decode_rows(*be, c, q, k, v, past, Tn);
          EXPECT_EQ(got_ref, want_ref);
          EXPECT_TRUE(all_close(got_be, want_be, kRtolCpu));
          EXPECT_EQ(decode_rows(*be, c, q, k, v, past, Tn), got_be);  // deterministic
          EXPECT_TRUE(all_close(got_be, want_ref, kRtol));
        }
      }
    }
  }
}

// A window shorter than the past hides the oldest keys: changing them must not change the output,
// changing a visible one must.
TEST(AttentionDecode, WindowHidesOldKeys) {
  for (auto kind : test::backend_kinds()) {
    auto be = make_backend(kind);
    const DecodeCase c{10, 2, 1, 4, 3};
    auto q = random_floats(size_t(c.T * c.H * c.S), 1), k = random_floats(size_t(c.T * c.S), 2);
    auto v = random_floats(k.size(), 3);
    const auto base = decode_rows(*be, c, q, k, v, 9, 1);  // query 9 sees keys 7, 8, 9
    auto v_old = v;
    for (int64_t s = 0; s < 7 * c.S; ++s) v_old[size_t(s)] += 5.0f;
    EXPECT_EQ(decode_rows(*be, c, q, k, v_old, 9, 1), base) << be->name();
    auto v_seen = v;
    v_seen[size_t(7 * c.S)] += 5.0f;
    EXPECT_NE(decode_rows(*be, c, q, k, v_seen, 9, 1), base) << be->name();
  }
}

}  // namespace
}  // namespace upcycle::backend
