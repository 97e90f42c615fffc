// Causal (optionally sliding-window) GQA attention on the GPU: attention_forward, attention_backward and
// attention_decode of backend.h, with the ref backend's semantics (src/backend/ref/ref_kernels.cpp):
// key j is visible from the query at absolute position i iff first_visible(i) ≤ j ≤ i (HF window:
// i − window < j), query head h reads kv head h / (H/KV), lse = log Σ_j exp(scale·q·k_j).
//
// Tiling (flash-style, fp32 SIMT, no tensor cores): a block of kWarps warps owns a tile of query rows
// (rows_per_warp: 4 per warp, 2 when S > 128) of one (sequence, head) and walks the visible keys in
// tiles of 32, staged in shared memory. Lane l of a warp scores key l of the tile against the warp's
// current query row (the query row is a shared-memory broadcast; key rows are padded to S+1 floats so
// the 32 lanes hit 32 banks), the softmax runs online (running max m, running sum l, rescaled output),
// and lane l owns output columns l, l+32, … (ceil(S/32) of them, a template parameter: any S ≤ 256 is
// one of eight instantiations, 64 and 128 included).
// Decoding a prompt (more than kSplitDecodeMaxTokens new tokens) runs the forward kernel with the
// queries at absolute positions past + n; a step of a few tokens splits each row's keys across the
// block's warps instead (flash-decoding within a block) and merges their partial softmax states. Either
// way only cache rows 0..past+Tn−1 are read.
// Backward recomputes the probabilities from lse and uses D_i = dout_i·out_i (= Σ_j p_j·dp_j) in two
// kernels, neither with atomics: dq per query tile (walking key tiles), and dk/dv per key tile of one kv
// head (walking, in a fixed order, the query heads of its GQA group in increasing h and then the query
// tiles that can see the keys, lane l holding query l of a tile). Every sum runs in a fixed order
// (warp butterflies, serial loops), so results are bitwise reproducible run to run.
// Non-goals: tensor-core MMA, splitting a decode row's keys across blocks, S > 256.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/op_checks.h"
#include "core/error.h"

namespace upcycle::backend {
namespace {

constexpr int kWarps = 8;                           // warps per block in every attention kernel
constexpr int kThreads = kWarps * 32;
constexpr int kKeyTile = 32;                        // keys per tile (forward, decode, dq): one per lane
constexpr int kQueryTile = 32;                      // queries per tile (dk/dv): one per lane
constexpr int kMaxColsPerLane = 8;                  // S ≤ 256
constexpr size_t kDefaultSharedBytes = 48 * 1024;   // above this a kernel must opt in
constexpr int64_t kSplitDecodeMaxTokens = 8;        // decode steps up to this many new tokens split keys

// Rows of the block's tile each warp owns: fewer for wide heads, so the shared tiles stay ≤ ~100 KB.
template <int kCols>
__host__ __device__ constexpr int rows_per_warp() {
  return kCols > 4 ? 2 : 4;
}

// Butterfly reductions over a full warp (every lane ends with the same bits). Same shape as
// cuda_kernels_common.cuh's warp_reduce; kept here until the lead folds them together.
__device__ inline float attn_warp_max(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}
__device__ inline float attn_warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__device__ inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// HF sliding window: the first key visible from absolute position i.
__device__ inline int64_t first_visible(int64_t i, int window) {
  return window > 0 ? (i - window + 1 > 0 ? i - window + 1 : 0) : 0;
}

// Shapes and pointers of one launch. Query row n of sequence b sits at absolute position pos0 + n
// (pos0 = 0 in training, past in decoding); key row j of sequence b is row b·kv_rows + j of k/v.
struct AttnArgs {
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  float* out = nullptr;
  float* lse = nullptr;  // forward only (null in decoding)
  int64_t q_rows = 0;    // query rows per sequence (Tseq, or Tn when decoding)
  int64_t kv_rows = 0;   // key rows per sequence in k/v (Tseq, or the cache's rows when decoding)
  int64_t pos0 = 0;
  int heads = 0, kv_heads = 0, head_dim = 0, window = 0;
  float scale = 0.0f;

  __device__ int64_t q_off(int64_t b, int64_t n, int h) const { return ((b * q_rows + n) * heads + h) * head_dim; }
  __device__ int64_t kv_off(int64_t b, int64_t j, int kvh) const {
    return ((b * kv_rows + j) * kv_heads + kvh) * head_dim;
  }
  __device__ int64_t lse_off(int64_t b, int64_t n, int h) const { return (b * q_rows + n) * heads + h; }
};

// Gradients and saved tensors of attention_backward (training layout: pos0 = 0, kv_rows = q_rows).
struct AttnGradArgs {
  AttnArgs fwd;                  // shapes, q, k, v (fwd.out and fwd.lse unused)
  const float* out = nullptr;    // the saved forward output
  const float* lse = nullptr;    // the saved lse
  const float* dout = nullptr;
  float* dq = nullptr;
  float* dk = nullptr;
  float* dv = nullptr;
};

// Copies `rows` rows of S floats (row r at src + r·src_stride, rows ≥ valid are zero) into shared memory
// with `pitch` floats per row. Every thread of the block takes part.
__device__ inline void load_rows(float* dst, int pitch, const float* src, int64_t src_stride, int rows, int valid,
                                 int S) {
  for (int e = int(threadIdx.x); e < rows * S; e += kThreads) {
    const int r = e / S, c = e % S;
    dst[r * pitch + c] = r < valid ? src[int64_t(r) * src_stride + c] : 0.0f;
  }
}

// a·b over S floats, in order (shared or global memory).
__device__ inline float row_dot(const float* a, const float* b, int S) {
  float acc = 0.0f;
  for (int c = 0; c < S; ++c) acc += a[c] * b[c];
  return acc;
}

// Forward and decode. Grid (query tiles, heads, batch); dynamic shared memory: the query tile [R·kWarps][S],
// the key tile [32][S+1], the value tile [32][S].
template <int kCols>
__global__ void __launch_bounds__(kThreads) attention_forward_kernel(AttnArgs a) {
  constexpr int kR = rows_per_warp<kCols>();
  constexpr int kTileRows = kR * kWarps;
  extern __shared__ float smem[];
  const int S = a.head_dim, lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  float* q_s = smem;
  float* k_s = q_s + kTileRows * S;
  float* v_s = k_s + kKeyTile * (S + 1);

  const int64_t b = blockIdx.z, n0 = int64_t(blockIdx.x) * kTileRows;
  const int h = int(blockIdx.y), kvh = h / (a.heads / a.kv_heads);
  const int q_valid = int(min64(kTileRows, a.q_rows - n0));
  const int64_t q_stride = int64_t(a.heads) * S, kv_stride = int64_t(a.kv_heads) * S;
  load_rows(q_s, S, a.q + a.q_off(b, n0, h), q_stride, kTileRows, q_valid, S);

  float m[kR], l[kR], o[kR][kCols];
  #pragma unroll
  for (int r = 0; r < kR; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
    #pragma unroll
    for (int u = 0; u < kCols; ++u) o[r][u] = 0.0f;
  }
  const int64_t j_lo = first_visible(a.pos0 + n0, a.window), j_hi = a.pos0 + n0 + q_valid - 1;
  for (int64_t j0 = j_lo; j0 <= j_hi; j0 += kKeyTile) {
    const int k_valid = int(min64(kKeyTile, j_hi + 1 - j0));
    __syncthreads();  // the previous tile is consumed (and, the first time, the query tile is loaded)
    load_rows(k_s, S + 1, a.k + a.kv_off(b, j0, kvh), kv_stride, kKeyTile, k_valid, S);
    load_rows(v_s, S, a.v + a.kv_off(b, j0, kvh), kv_stride, kKeyTile, k_valid, S);
    __syncthreads();
    #pragma unroll
    for (int r = 0; r < kR; ++r) {
      const int row = warp * kR + r;
      if (row >= q_valid) break;  // warp-uniform
      const int64_t i = a.pos0 + n0 + row, j = j0 + lane;
      const bool visible = j <= i && j >= first_visible(i, a.window);
      const float score = visible ? a.scale * row_dot(q_s + row * S, k_s + lane * (S + 1), S) : -INFINITY;
      const float m_new = fmaxf(m[r], attn_warp_max(score));
      if (m_new == -INFINITY) continue;  // no visible key yet for this row (warp-uniform)
      const float p = visible ? expf(score - m_new) : 0.0f;
      const float alpha = expf(m[r] - m_new);  // 0 on the row's first visible tile
      l[r] = l[r] * alpha + attn_warp_sum(p);
      m[r] = m_new;
      #pragma unroll
      for (int u = 0; u < kCols; ++u) o[r][u] *= alpha;
      #pragma unroll
      for (int jj = 0; jj < kKeyTile; ++jj) {
        const float p_j = __shfl_sync(0xffffffffu, p, jj);
        #pragma unroll
        for (int u = 0; u < kCols; ++u) {
          const int c = lane + 32 * u;
          if (c < S) o[r][u] += p_j * v_s[jj * S + c];
        }
      }
    }
  }
  #pragma unroll
  for (int r = 0; r < kR; ++r) {
    const int row = warp * kR + r;
    if (row >= q_valid) break;
    float* out_S = a.out + a.q_off(b, n0 + row, h);
    const float inv_l = 1.0f / l[r];
    #pragma unroll
    for (int u = 0; u < kCols; ++u) {
      const int c = lane + 32 * u;
      if (c < S) out_S[c] = o[r][u] * inv_l;
    }
    if (a.lse && lane == 0) a.lse[a.lse_off(b, n0 + row, h)] = m[r] + logf(l[r]);
  }
}

// Decoding a few tokens (split keys): one block per (new token n, head h); warp w walks the key tiles
// w, w + kWarps, … of the row's visible keys with its own online softmax (keys and values read from
// global memory: the lanes' rows stay in L1 while the dot runs along them), then the kWarps partial
// states (m, l, o) meet in shared memory and are merged in warp order. Shared: the query row [S], the
// partial outputs [kWarps][S], their m and l [kWarps].
template <int kCols>
__global__ void __launch_bounds__(kThreads) attention_decode_split_kernel(AttnArgs a) {
  extern __shared__ float smem[];
  const int S = a.head_dim, lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  float* q_s = smem;
  float* o_s = q_s + S;
  float* m_s = o_s + kWarps * S;
  float* l_s = m_s + kWarps;

  const int64_t n = blockIdx.x, i = a.pos0 + n;
  const int h = int(blockIdx.y), kvh = h / (a.heads / a.kv_heads);
  for (int c = int(threadIdx.x); c < S; c += kThreads) q_s[c] = a.q[a.q_off(0, n, h) + c];
  __syncthreads();

  float m = -INFINITY, l = 0.0f, o[kCols];
#pragma unroll
  for (int u = 0; u < kCols; ++u) o[u] = 0.0f;
  for (int64_t j0 = first_visible(i, a.window) + int64_t(warp) * kKeyTile; j0 <= i; j0 += kWarps * kKeyTile) {
    const int64_t j = j0 + lane;
    const bool visible = j <= i;  // j ≥ first_visible(i) by the loop's start
    const float score = visible ? a.scale * row_dot(q_s, a.k + a.kv_off(0, j, kvh), S) : -INFINITY;
    const float m_new = fmaxf(m, attn_warp_max(score));  // finite: key j0 ≤ i is visible
    const float p = visible ? expf(score - m_new) : 0.0f;
    const float alpha = expf(m - m_new);
    l = l * alpha + attn_warp_sum(p);
    m = m_new;
#pragma unroll
    for (int u = 0; u < kCols; ++u) o[u] *= alpha;
    const int keys = int(min64(kKeyTile, i + 1 - j0));
    for (int jj = 0; jj < keys; ++jj) {
      const float p_j = __shfl_sync(0xffffffffu, p, jj);
      const float* v_S = a.v + a.kv_off(0, j0 + jj, kvh);
#pragma unroll
      for (int u = 0; u < kCols; ++u) {
        const int c = lane + 32 * u;
        if (c < S) o[u] += p_j * v_S[c];
      }
    }
  }
#pragma unroll
  for (int u = 0; u < kCols; ++u) {
    const int c = lane + 32 * u;
    if (c < S) o_s[warp * S + c] = o[u];
  }
  if (lane == 0) {
    m_s[warp] = m;
    l_s[warp] = l;
  }
  __syncthreads();
  // Merge: warps that saw no key carry m = −inf, l = 0 and weigh exp(−inf) = 0.
  float m_all = -INFINITY;
  for (int w = 0; w < kWarps; ++w) m_all = fmaxf(m_all, m_s[w]);
  float l_all = 0.0f;
  for (int w = 0; w < kWarps; ++w) l_all += l_s[w] * expf(m_s[w] - m_all);
  for (int c = int(threadIdx.x); c < S; c += kThreads) {
    float acc = 0.0f;
    for (int w = 0; w < kWarps; ++w) acc += o_s[w * S + c] * expf(m_s[w] - m_all);
    a.out[a.q_off(0, n, h) + c] = acc / l_all;
  }
}

// D = dout·out for one row, by the 32 lanes of a warp (a fixed-order sum).
__device__ inline float row_dout_dot_out(const float* dout_S, const float* out_S, int S, int lane) {
  float part = 0.0f;
  for (int c = lane; c < S; c += 32) part += dout_S[c] * out_S[c];
  return attn_warp_sum(part);
}

// dq[i] += scale · Σ_j p_ij·(dp_ij − D_i)·k_j, p_ij = exp(scale·q_i·k_j − lse_i), dp_ij = dout_i·v_j.
// Grid (query tiles, heads, batch); shared: q and dout tiles [R·kWarps][S], k and v tiles [32][S+1].
template <int kCols>
__global__ void __launch_bounds__(kThreads) attention_backward_dq_kernel(AttnGradArgs g) {
  constexpr int kR = rows_per_warp<kCols>();
  constexpr int kTileRows = kR * kWarps;
  extern __shared__ float smem[];
  const AttnArgs& a = g.fwd;
  const int S = a.head_dim, lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  float* q_s = smem;
  float* do_s = q_s + kTileRows * S;
  float* k_s = do_s + kTileRows * S;
  float* v_s = k_s + kKeyTile * (S + 1);

  const int64_t b = blockIdx.z, n0 = int64_t(blockIdx.x) * kTileRows;
  const int h = int(blockIdx.y), kvh = h / (a.heads / a.kv_heads);
  const int q_valid = int(min64(kTileRows, a.q_rows - n0));
  const int64_t q_stride = int64_t(a.heads) * S, kv_stride = int64_t(a.kv_heads) * S;
  load_rows(q_s, S, a.q + a.q_off(b, n0, h), q_stride, kTileRows, q_valid, S);
  load_rows(do_s, S, g.dout + a.q_off(b, n0, h), q_stride, kTileRows, q_valid, S);

  float lse[kR], d_row[kR], acc[kR][kCols];
  #pragma unroll
  for (int r = 0; r < kR; ++r) {
    const int row = warp * kR + r;
    const bool valid = row < q_valid;
    lse[r] = valid ? g.lse[a.lse_off(b, n0 + row, h)] : 0.0f;
    d_row[r] = valid ? row_dout_dot_out(g.dout + a.q_off(b, n0 + row, h), g.out + a.q_off(b, n0 + row, h), S, lane)
                     : 0.0f;
    #pragma unroll
    for (int u = 0; u < kCols; ++u) acc[r][u] = 0.0f;
  }
  const int64_t j_lo = first_visible(n0, a.window), j_hi = n0 + q_valid - 1;
  for (int64_t j0 = j_lo; j0 <= j_hi; j0 += kKeyTile) {
    const int k_valid = int(min64(kKeyTile, j_hi + 1 - j0));
    __syncthreads();
    load_rows(k_s, S + 1, a.k + a.kv_off(b, j0, kvh), kv_stride, kKeyTile, k_valid, S);
    load_rows(v_s, S + 1, a.v + a.kv_off(b, j0, kvh), kv_stride, kKeyTile, k_valid, S);
    __syncthreads();
    #pragma unroll
    for (int r = 0; r < kR; ++r) {
      const int row = warp * kR + r;
      if (row >= q_valid) break;
      const int64_t i = n0 + row, j = j0 + lane;
      float ds = 0.0f;
      if (j <= i && j >= first_visible(i, a.window)) {
        const float p = expf(a.scale * row_dot(q_s + row * S, k_s + lane * (S + 1), S) - lse[r]);
        const float dp = row_dot(do_s + row * S, v_s + lane * (S + 1), S);
        ds = p * (dp - d_row[r]) * a.scale;
      }
      #pragma unroll
      for (int jj = 0; jj < kKeyTile; ++jj) {
        const float ds_j = __shfl_sync(0xffffffffu, ds, jj);
        #pragma unroll
        for (int u = 0; u < kCols; ++u) {
          const int c = lane + 32 * u;
          if (c < S) acc[r][u] += ds_j * k_s[jj * (S + 1) + c];
        }
      }
    }
  }
  #pragma unroll
  for (int r = 0; r < kR; ++r) {
    const int row = warp * kR + r;
    if (row >= q_valid) break;
    float* dq_S = g.dq + a.q_off(b, n0 + row, h);
    #pragma unroll
    for (int u = 0; u < kCols; ++u) {
      const int c = lane + 32 * u;
      if (c < S) dq_S[c] += acc[r][u];
    }
  }
}

// dv[j] += Σ_{h in group, i} p_ij·dout_i;  dk[j] += scale · Σ_{h, i} p_ij·(dp_ij − D_i)·q_i.
// Grid (key tiles, kv heads, batch); the block's keys are rows j0..j0+R·kWarps−1, warp w owns R of them.
// Shared: k and v tiles [R·kWarps][S] (broadcast reads), q and dout tiles [32][S+1], lse and D [32].
template <int kCols>
__global__ void __launch_bounds__(kThreads) attention_backward_dkdv_kernel(AttnGradArgs g) {
  constexpr int kR = rows_per_warp<kCols>();
  constexpr int kTileRows = kR * kWarps;
  extern __shared__ float smem[];
  const AttnArgs& a = g.fwd;
  const int S = a.head_dim, lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  float* k_s = smem;
  float* v_s = k_s + kTileRows * S;
  float* q_s = v_s + kTileRows * S;
  float* do_s = q_s + kQueryTile * (S + 1);
  float* lse_s = do_s + kQueryTile * (S + 1);
  float* d_s = lse_s + kQueryTile;

  const int64_t b = blockIdx.z, T = a.q_rows, j0 = int64_t(blockIdx.x) * kTileRows;
  const int kvh = int(blockIdx.y), group = a.heads / a.kv_heads;
  const int k_valid = int(min64(kTileRows, T - j0));
  const int64_t q_stride = int64_t(a.heads) * S, kv_stride = int64_t(a.kv_heads) * S;
  load_rows(k_s, S, a.k + a.kv_off(b, j0, kvh), kv_stride, kTileRows, k_valid, S);
  load_rows(v_s, S, a.v + a.kv_off(b, j0, kvh), kv_stride, kTileRows, k_valid, S);

  float dk_acc[kR][kCols], dv_acc[kR][kCols];
  #pragma unroll
  for (int r = 0; r < kR; ++r) {
    #pragma unroll
    for (int u = 0; u < kCols; ++u) dk_acc[r][u] = dv_acc[r][u] = 0.0f;
  }
  // Queries that see any key of the tile: i ≥ j0, and i < (last key) + window under a window.
  const int64_t j_last = j0 + k_valid - 1;
  const int64_t i_hi = a.window > 0 ? min64(T - 1, j_last + a.window - 1) : T - 1;
  for (int gh = 0; gh < group; ++gh) {
    const int h = kvh * group + gh;
    for (int64_t i0 = j0; i0 <= i_hi; i0 += kQueryTile) {
      const int q_valid = int(min64(kQueryTile, i_hi + 1 - i0));
      __syncthreads();
      load_rows(q_s, S + 1, a.q + a.q_off(b, i0, h), q_stride, kQueryTile, q_valid, S);
      load_rows(do_s, S + 1, g.dout + a.q_off(b, i0, h), q_stride, kQueryTile, q_valid, S);
      for (int qi = warp; qi < kQueryTile; qi += kWarps) {
        const bool valid = qi < q_valid;
        const float d = valid ? row_dout_dot_out(g.dout + a.q_off(b, i0 + qi, h), g.out + a.q_off(b, i0 + qi, h), S,
                                                 lane)
                              : 0.0f;
        if (lane == 0) {
          d_s[qi] = d;
          lse_s[qi] = valid ? g.lse[a.lse_off(b, i0 + qi, h)] : 0.0f;
        }
      }
      __syncthreads();
      #pragma unroll
      for (int r = 0; r < kR; ++r) {
        const int row = warp * kR + r;
        if (row >= k_valid) break;
        const int64_t j = j0 + row, i = i0 + lane;
        float p = 0.0f, ds = 0.0f;
        if (lane < q_valid && j <= i && j >= first_visible(i, a.window)) {
          p = expf(a.scale * row_dot(q_s + lane * (S + 1), k_s + row * S, S) - lse_s[lane]);
          const float dp = row_dot(do_s + lane * (S + 1), v_s + row * S, S);
          ds = p * (dp - d_s[lane]) * a.scale;
        }
        #pragma unroll
        for (int ii = 0; ii < kQueryTile; ++ii) {
          const float p_i = __shfl_sync(0xffffffffu, p, ii);
          const float ds_i = __shfl_sync(0xffffffffu, ds, ii);
          #pragma unroll
          for (int u = 0; u < kCols; ++u) {
            const int c = lane + 32 * u;
            if (c < S) {
              dv_acc[r][u] += p_i * do_s[ii * (S + 1) + c];
              dk_acc[r][u] += ds_i * q_s[ii * (S + 1) + c];
            }
          }
        }
      }
    }
  }
  #pragma unroll
  for (int r = 0; r < kR; ++r) {
    const int row = warp * kR + r;
    if (row >= k_valid) break;
    float* dk_S = g.dk + a.kv_off(b, j0 + row, kvh);
    float* dv_S = g.dv + a.kv_off(b, j0 + row, kvh);
    #pragma unroll
    for (int u = 0; u < kCols; ++u) {
      const int c = lane + 32 * u;
      if (c < S) {
        dk_S[c] += dk_acc[r][u];
        dv_S[c] += dv_acc[r][u];
      }
    }
  }
}

// Calls fn(std::integral_constant<int, ceil(S/32)>) — the kernels' column count per lane.
template <typename Fn>
void with_cols_per_lane(int S, Fn&& fn) {
  switch ((S + 31) / 32) {
    case 1: return fn(std::integral_constant<int, 1>{});
    case 2: return fn(std::integral_constant<int, 2>{});
    case 3: return fn(std::integral_constant<int, 3>{});
    case 4: return fn(std::integral_constant<int, 4>{});
    case 5: return fn(std::integral_constant<int, 5>{});
    case 6: return fn(std::integral_constant<int, 6>{});
    case 7: return fn(std::integral_constant<int, 7>{});
    case 8: return fn(std::integral_constant<int, 8>{});
    default: break;
  }
}

// The head dim is the model's: a wider one is a user-facing limit of this backend, not a bug.
void check_head_dim(int64_t S) {
  if (S > 32 * kMaxColsPerLane) {
    throw Error("cuda backend: attention head dim " + std::to_string(S) + " is not supported (at most " +
                std::to_string(32 * kMaxColsPerLane) + ")");
  }
}

// Launches kernel over `grid` with `shared_bytes` of dynamic shared memory, opting in above 48 KB.
template <typename Kernel, typename Args>
void launch(Kernel kernel, dim3 grid, size_t shared_bytes, cudaStream_t stream, const Args& args) {
  if (shared_bytes > kDefaultSharedBytes) {
    UPCYCLE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shared_bytes)));
  }
  kernel<<<grid, kThreads, shared_bytes, stream>>>(args);
  UPCYCLE_CUDA_LAUNCH_CHECK();
}

// Forward-kernel launch shared by attention_forward and attention_decode.
void launch_forward(const AttnArgs& args, int64_t batch, cudaStream_t stream) {
  if (batch == 0 || args.q_rows == 0) return;
  with_cols_per_lane(args.head_dim, [&](auto cols) {
    constexpr int kCols = decltype(cols)::value;
    constexpr int kTileRows = rows_per_warp<kCols>() * kWarps;
    const int S = args.head_dim;
    const size_t shared = sizeof(float) * (size_t(kTileRows) * S + size_t(kKeyTile) * (S + 1) + size_t(kKeyTile) * S);
    const dim3 grid(unsigned((args.q_rows + kTileRows - 1) / kTileRows), unsigned(args.heads), unsigned(batch));
    launch(attention_forward_kernel<kCols>, grid, shared, stream, args);
  });
}

AttnArgs attn_args(const float* q, const float* k, const float* v, const AttentionShape& sh) {
  AttnArgs a;
  a.q = q;
  a.k = k;
  a.v = v;
  a.q_rows = sh.seq_len;
  a.kv_rows = sh.seq_len;
  a.heads = int(sh.heads);
  a.kv_heads = int(sh.kv_heads);
  a.head_dim = int(sh.head_dim);
  a.window = int(std::min<int64_t>(sh.window, INT32_MAX));  // a window past every position = full causal
  a.scale = sh.scale;
  return a;
}

}  // namespace

void CudaBackend::attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                                    const AttentionShape& shape) {
  check_attention_shape(shape);
  check_head_dim(shape.head_dim);
  AttnArgs a = attn_args(q, k, v, shape);
  a.out = out;
  a.lse = lse;
  launch_forward(a, shape.batch, stream_);
}

void CudaBackend::attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                                     const float* k, const float* v, const float* out, const float* lse,
                                     const AttentionShape& shape) {
  check_attention_shape(shape);
  check_head_dim(shape.head_dim);
  if (shape.batch == 0 || shape.seq_len == 0) return;
  AttnGradArgs g;
  g.fwd = attn_args(q, k, v, shape);
  g.out = out;
  g.lse = lse;
  g.dout = dout;
  g.dq = dq;
  g.dk = dk;
  g.dv = dv;
  with_cols_per_lane(g.fwd.head_dim, [&](auto cols) {
    constexpr int kCols = decltype(cols)::value;
    constexpr int kTileRows = rows_per_warp<kCols>() * kWarps;
    const int S = g.fwd.head_dim;
    const unsigned tiles = unsigned((shape.seq_len + kTileRows - 1) / kTileRows);
    const size_t dq_shared = sizeof(float) * (2 * size_t(kTileRows) * S + 2 * size_t(kKeyTile) * (S + 1));
    launch(attention_backward_dq_kernel<kCols>, dim3(tiles, unsigned(shape.heads), unsigned(shape.batch)), dq_shared,
           stream_, g);
    const size_t dkdv_shared =
        sizeof(float) * (2 * size_t(kTileRows) * S + 2 * size_t(kQueryTile) * (S + 1) + 2 * size_t(kQueryTile));
    launch(attention_backward_dkdv_kernel<kCols>, dim3(tiles, unsigned(shape.kv_heads), unsigned(shape.batch)),
           dkdv_shared, stream_, g);
  });
}

void CudaBackend::attention_decode(float* out, const float* q, const float* k_cache, const float* v_cache,
                                   int64_t past, const AttentionShape& shape) {
  check_attention_decode(shape, past);
  check_head_dim(shape.head_dim);
  AttnArgs a = attn_args(q, k_cache, v_cache, shape);
  a.out = out;
  a.pos0 = past;
  a.kv_rows = past + shape.seq_len;  // batch is 1: the stride between sequences is never used
  if (shape.seq_len > kSplitDecodeMaxTokens) {
    launch_forward(a, 1, stream_);  // a prompt: query tiles as in training
    return;
  }
  if (shape.seq_len == 0) return;
  with_cols_per_lane(a.head_dim, [&](auto cols) {
    constexpr int kCols = decltype(cols)::value;
    const size_t shared = sizeof(float) * (size_t(kWarps + 1) * a.head_dim + 2 * kWarps);
    launch(attention_decode_split_kernel<kCols>, dim3(unsigned(shape.seq_len), unsigned(a.heads)), shared, stream_, a);
  });
}

}  // namespace upcycle::backend
