// Causal (optionally sliding-window) softmax attention with GQA, one (sequence, query head) block per
// OpenMP task. Forward saves lse = log Σ exp(scores) per query so backward can recompute the
// probabilities exactly without storing the T×T matrix.
// Forward and backward work on tiles of kTile query rows. Forward: the scores of a tile against its
// visible keys are one sgemm, the masked softmax (vec_exp) runs row by row and gives lse, and
// out = P·V is a second sgemm. Backward: scores and dout·vᵀ are two sgemms, the masked softmax
// gradient is elementwise, and dq/dk/dv are three more sgemms; each block accumulates dk/dv in private
// scratch, then the query heads of a GQA group are summed in head order: deterministic, no atomics.
// (sgemm runs single-threaded inside the OpenMP region.)
// attention_decode (KV-cache generation) keeps a per-row kernel (vectorised dots, fixed order): it is
// deterministic, but a decoded row is no longer bitwise the forward row — the sums run in another
// order — only equal within ~1e-7 relative (tests/unit/backend_decode_test.cpp, docs/engine.md).
// Non-goals: flash-style online softmax (the tile's scores fit in L2), batched decoding, non-causal
// attention, ALiBi.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/vec_exp.h"
#include "backend/op_checks.h"

namespace upcycle::backend {
namespace {

// Offsets into q/out [T, H, S], k/v [T, KV, S] and lse [T, H] for sequence b, position i, query head h.
struct AttnLayout {
  const AttentionShape& sh;
  int64_t group() const { return sh.heads / sh.kv_heads; }
  int64_t q(int64_t b, int64_t i, int64_t h) const { return ((b * sh.seq_len + i) * sh.heads + h) * sh.head_dim; }
  int64_t kv(int64_t b, int64_t j, int64_t h) const {
    return ((b * sh.seq_len + j) * sh.kv_heads + h / group()) * sh.head_dim;
  }
  int64_t lse(int64_t b, int64_t i, int64_t h) const { return (b * sh.seq_len + i) * sh.heads + h; }
  // HF sliding window: key j is visible from query i iff i − window < j ≤ i.
  int64_t first_key(int64_t i) const { return sh.window > 0 ? std::max<int64_t>(0, i - sh.window + 1) : 0; }
  int64_t ldq() const { return sh.heads * sh.head_dim; }      // row stride of q/out/dout
  int64_t ldkv() const { return sh.kv_heads * sh.head_dim; }  // row stride of k/v
};

// A tile of m query rows from i0 and the n keys any of them sees, [j0, i0 + m).
struct AttnTile {
  int64_t m, j0, n;
};

// Vector lanes accumulate in a fixed order (omp simd): ~lane-count times faster than a serial chain,
// and still the same result for the same inputs (decode and backward are deterministic).
inline float dot(const float* a, const float* b, int64_t n) {
  float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
  for (int64_t s = 0; s < n; ++s) acc += a[s] * b[s];
  return acc;
}

// One query row at absolute position i over keys j0..i: out_S = Σ_j softmax(scores)_j·v_j (decode).
// k_pos/v_pos point at position 0's row of this query's kv head, rows `stride` floats apart.
// `p` is scratch of ≥ i+1 floats.
// Compiled for AVX-512 and AVX2 as well as the baseline ISA and picked once per process at load time
// (GCC/Clang target_clones): the build targets generic x86-64.
__attribute__((target_clones("avx512f", "avx2", "default"))) float attend_row(
    float* out_S, float* p, const float* q_S, const float* k_pos, const float* v_pos, int64_t stride, int64_t j0,
    int64_t i, int64_t S, float scale) {
  float max_score = -INFINITY;
  for (int64_t j = j0; j <= i; ++j) {
    p[j] = scale * dot(q_S, k_pos + j * stride, S);
    max_score = std::max(max_score, p[j]);
  }
  double denom = 0.0;
  for (int64_t j = j0; j <= i; ++j) {
    p[j] = std::exp(p[j] - max_score);  // ≤ 1: no overflow whatever the scores
    denom += p[j];
  }
  const float inv_denom = float(1.0 / denom);
  std::fill_n(out_S, S, 0.0f);
  for (int64_t j = j0; j <= i; ++j) {
    const float* v_S = v_pos + j * stride;
    const float w = p[j] * inv_denom;
    for (int64_t s = 0; s < S; ++s) out_S[s] += w * v_S[s];
  }
  return max_score + float(std::log(denom));
}

// Query rows per tile, forward and backward: large enough for sgemm to reach its speed, small enough
// that the [kTile, Tseq] score tiles stay in L2.
constexpr int64_t kTile = 64;

AttnTile tile_at(const AttnLayout& lay, int64_t i0) {
  const int64_t i1 = std::min(lay.sh.seq_len, i0 + kTile), j0 = lay.first_key(i0);
  return {i1 - i0, j0, i1 - j0};
}

// Softmax of one score row in place over its visible columns [lo, hi] of [0, n): masked columns
// become exact zeros (so P·V over the whole tile is exact), visible ones p_j / Σ p; returns
// lse = max + log Σ exp(score − max). The sum runs in vector lanes of fixed order (deterministic).
// Cloned per ISA like attend_row, so vec_exp is inlined as vector code.
__attribute__((target_clones("avx512f", "avx2", "default"))) float softmax_row_masked(float* row, int64_t lo,
                                                                                      int64_t hi, int64_t n) {
  float max_score = -INFINITY;
  for (int64_t c = lo; c <= hi; ++c) max_score = std::max(max_score, row[c]);
  float denom = 0.0f;
#pragma omp simd reduction(+ : denom)
  for (int64_t c = lo; c <= hi; ++c) {
    row[c] = cpu_detail::vec_exp(row[c] - max_score);  // ≤ 1: no overflow whatever the scores
    denom += row[c];
  }
  const float inv_denom = 1.0f / denom;  // ≥ 1: the max column contributes exp(0)
#pragma omp simd
  for (int64_t c = lo; c <= hi; ++c) row[c] *= inv_denom;
  std::fill(row, row + lo, 0.0f);
  std::fill(row + hi + 1, row + n, 0.0f);
  return max_score + std::log(denom);
}

// Forward of one (sequence b, query head h) block, tiled like the backward: per tile of query rows
// [i0, i1) the scores against the visible keys [first_key(i0), i1) are one sgemm, the masked softmax
// is computed row by row, and out = P·V is a second sgemm. `s_tile` is scratch of ≥ kTile·Tseq floats.
void attention_forward_block(float* out, float* lse, float* s_tile, const float* q, const float* k, const float* v,
                             const AttnLayout& lay, int64_t b, int64_t h) {
  const int64_t S = lay.sh.head_dim, ldq = lay.ldq(), ldk = lay.ldkv();
  const float* q_h = q + lay.q(b, 0, h);
  const float* k_h = k + lay.kv(b, 0, h);
  const float* v_h = v + lay.kv(b, 0, h);
  float* out_h = out + lay.q(b, 0, h);
  for (int64_t i0 = 0; i0 < lay.sh.seq_len; i0 += kTile) {
    const auto [m, j0, n] = tile_at(lay, i0);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(n), int(S), lay.sh.scale, q_h + i0 * ldq,
                int(ldq), k_h + j0 * ldk, int(ldk), 0.0f, s_tile, int(n));
    for (int64_t r = 0; r < m; ++r) {
      const int64_t i = i0 + r;
      lse[lay.lse(b, i, h)] = softmax_row_masked(s_tile + r * n, lay.first_key(i) - j0, i - j0, n);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(m), int(S), int(n), 1.0f, s_tile, int(n),
                v_h + j0 * ldk, int(ldk), 0.0f, out_h + i0 * ldq, int(ldq));
  }
}

}  // namespace

void CpuBackend::attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                                   const AttentionShape& shape) {
  check_attention_shape(shape);
  const AttnLayout lay{shape};
  const int64_t B = shape.batch, H = shape.heads;
#pragma omp parallel
  {
    std::vector<float> s_tile(size_t(kTile * shape.seq_len));
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t h = 0; h < H; ++h) attention_forward_block(out, lse, s_tile.data(), q, k, v, lay, b, h);
    }
  }
}

// Query n of the new block sits at absolute position past + n; cache row j holds key position j.
void CpuBackend::attention_decode(float* out, const float* q, const float* k_cache, const float* v_cache,
                                  int64_t past, const AttentionShape& shape) {
  check_attention_decode(shape, past);
  const int64_t H = shape.heads, Tn = shape.seq_len, S = shape.head_dim, G = shape.heads / shape.kv_heads;
  const AttentionShape full{1, past + Tn, shape.heads, shape.kv_heads, S, shape.window, shape.scale};
  const AttnLayout lay{full};
#pragma omp parallel
  {
    std::vector<float> p(size_t(past + Tn));
#pragma omp for collapse(2) schedule(static)
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t n = 0; n < Tn; ++n) {
        const int64_t i = past + n, kv_off = (h / G) * S;
        attend_row(out + (n * H + h) * S, p.data(), q + (n * H + h) * S, k_cache + kv_off, v_cache + kv_off,
                   shape.kv_heads * S, lay.first_key(i), i, S, shape.scale);
      }
    }
  }
}

namespace {

// One row of the backward tile: scores → p = exp(score − lse) and dout·vᵀ → dscore = scale·p·(· − Δ)
// over the visible columns [lo, hi]; masked columns become exact zeros. Cloned per ISA (vec_exp).
__attribute__((target_clones("avx512f", "avx2", "default"))) void softmax_grad_row_masked(
    float* p_row, float* ds_row, int64_t lo, int64_t hi, int64_t n, float lse, float delta, float scale) {
#pragma omp simd
  for (int64_t c = lo; c <= hi; ++c) {
    const float p = cpu_detail::vec_exp(p_row[c] - lse);
    p_row[c] = p;
    ds_row[c] = scale * p * (ds_row[c] - delta);
  }
  for (float* row : {p_row, ds_row}) {
    std::fill(row, row + lo, 0.0f);
    std::fill(row + hi + 1, row + n, 0.0f);
  }
}

// Backward of one (sequence b, query head h) block. dq is accumulated in place (the block owns those
// rows); dk/dv contributions go to this block's scratch dk_TS/dv_TS [Tseq, S], zeroed by the caller.
// With p_j = exp(scale·q·k_j − lse) and Δ = dout·out = Σ_j p_j·(dout·v_j):
//   dv_j += p_j·dout;  dscore_j = scale·p_j·(dout·v_j − Δ);  dq += Σ_j dscore_j·k_j;  dk_j += dscore_j·q.
// Per tile of query rows [i0, i1) the visible keys are [first_key(i0), i1); entries a row may not see
// (j > i, or before its window) are set to p = dscore = 0 so the sgemms over the whole tile stay exact.
// p_tile/ds_tile are scratch of ≥ kTile·Tseq floats.
void attention_backward_block(float* dq, float* dk_TS, float* dv_TS, float* p_tile, float* ds_tile,
                              const float* dout, const float* q, const float* k, const float* v, const float* out,
                              const float* lse, const AttnLayout& lay, int64_t b, int64_t h) {
  const int64_t S = lay.sh.head_dim, ldq = lay.ldq(), ldk = lay.ldkv();
  const float scale = lay.sh.scale;
  const float* q_h = q + lay.q(b, 0, h);
  const float* dout_h = dout + lay.q(b, 0, h);
  const float* k_h = k + lay.kv(b, 0, h);
  const float* v_h = v + lay.kv(b, 0, h);
  float* dq_h = dq + lay.q(b, 0, h);
  for (int64_t i0 = 0; i0 < lay.sh.seq_len; i0 += kTile) {
    const auto [m, j0, n] = tile_at(lay, i0);
    // p_tile = scale·q·kᵀ, ds_tile = dout·vᵀ over the tile's rows × keys j0..i1−1 ([m, n], ld n).
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(n), int(S), scale, q_h + i0 * ldq, int(ldq),
                k_h + j0 * ldk, int(ldk), 0.0f, p_tile, int(n));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(n), int(S), 1.0f, dout_h + i0 * ldq, int(ldq),
                v_h + j0 * ldk, int(ldk), 0.0f, ds_tile, int(n));
    for (int64_t r = 0; r < m; ++r) {
      const int64_t i = i0 + r;
      const float lse_i = lse[lay.lse(b, i, h)];
      const float delta = dot(dout_h + i * ldq, out + lay.q(b, i, h), S);
      const int64_t lo = lay.first_key(i) - j0, hi = i - j0;  // visible columns [lo, hi]
      softmax_grad_row_masked(p_tile + r * n, ds_tile + r * n, lo, hi, n, lse_i, delta, scale);
    }
    // dq[i0..i1) += ds·k;  dk[j0..i1) += dsᵀ·q;  dv[j0..i1) += pᵀ·dout.
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(m), int(S), int(n), 1.0f, ds_tile, int(n),
                k_h + j0 * ldk, int(ldk), 1.0f, dq_h + i0 * ldq, int(ldq));
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(n), int(S), int(m), 1.0f, ds_tile, int(n),
                q_h + i0 * ldq, int(ldq), 1.0f, dk_TS + j0 * S, int(S));
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(n), int(S), int(m), 1.0f, p_tile, int(n),
                dout_h + i0 * ldq, int(ldq), 1.0f, dv_TS + j0 * S, int(S));
  }
}

}  // namespace

void CpuBackend::attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                                    const float* k, const float* v, const float* out, const float* lse,
                                    const AttentionShape& shape) {
  check_attention_shape(shape);
  const AttnLayout lay{shape};
  const int64_t B = shape.batch, H = shape.heads, KV = shape.kv_heads, Tseq = shape.seq_len, S = shape.head_dim;
  const int64_t block = Tseq * S;
  // Per-(b, h) scratch so query heads sharing a kv head never write the same memory.
  std::vector<float> dk_scratch(size_t(B * H * block), 0.0f), dv_scratch(dk_scratch.size(), 0.0f);
#pragma omp parallel
  {
    std::vector<float> p_tile(size_t(kTile * Tseq)), ds_tile(p_tile.size());
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t h = 0; h < H; ++h) {
        attention_backward_block(dq, dk_scratch.data() + (b * H + h) * block,
                                 dv_scratch.data() + (b * H + h) * block, p_tile.data(), ds_tile.data(), dout, q, k,
                                 v, out, lse, lay, b, h);
      }
    }
  }
  // Reduce each GQA group in head order into dk/dv [T, KV, S].
  const int64_t G = H / KV;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t j = 0; j < Tseq; ++j) {
      for (int64_t kvh = 0; kvh < KV; ++kvh) {
        float* dk_S = dk + ((b * Tseq + j) * KV + kvh) * S;
        float* dv_S = dv + ((b * Tseq + j) * KV + kvh) * S;
        for (int64_t h = kvh * G; h < (kvh + 1) * G; ++h) {
          const int64_t off = (b * H + h) * block + j * S;
          for (int64_t s = 0; s < S; ++s) {
            dk_S[s] += dk_scratch[size_t(off + s)];
            dv_S[s] += dv_scratch[size_t(off + s)];
          }
        }
      }
    }
  }
}

}  // namespace upcycle::backend
