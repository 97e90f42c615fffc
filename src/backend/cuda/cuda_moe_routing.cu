// The cuda backend's MoE routing and loss ops (backend.h, "MoE routing and losses"): jitter, the routing
// decision and its backward, the aux / z / Dirichlet losses, the shared-expert gate and the router
// statistics. The oracle is src/backend/ref/ref_moe_routing.cpp; every kernel repeats its arithmetic
// term for term in the same order, with explicit round-to-nearest intrinsics (__dadd_rn, __dmul_rn, …)
// wherever the ref adds a product, so nvcc can never contract them into an fma the ref does not do.
// Integer results (the routing) and sums the ref runs serially (aux loss columns, z loss, the
// per-token dots and Σ g·p) are therefore bitwise the ref's; transcendental results (logsumexp, the
// router entropy) can differ from glibc's in the last ulp, and the router statistics sum their rows in
// a fixed tree (one block) instead of serially over T·E elements.
// The routing decision sorts 64-bit composite keys with cub's radix sort (deterministic, stable):
//   by (expert, token): each expert's candidates in increasing token order — the output order;
//   by (expert, p descending, token): each expert's candidates in capacity order (the ref's ByScore),
//   so a candidate is kept iff its rank inside its expert's segment is below the capacity.
// Host traffic: moe_route looks for non-finite scores on the device and downloads the two first bad
// indices at its end (it synchronises, right before the layer downloads the routing index);
// dirichlet_prior_loss downloads p[T,E] (and the token domains), runs the ref's double-precision kernel
// on the host and uploads the loss and ∂L/∂p — an optional regulariser, where a per-prior device sort
// and a device Beta CDF would buy little.
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_kernels_common.cuh"
#include "backend/cuda/cuda_routing_state.h"
#include "backend/moe_route_rules.h"
#include "backend/op_checks.h"
#include "backend/ref/ref_moe_routing.h"

namespace upcycle::backend {

namespace cuda_detail {

DeviceScratch::~DeviceScratch() {
  if (ptr_) cudaFree(ptr_);  // no throw from a destructor; a failure here leaks nothing we could recover
}

void* DeviceScratch::reserve(size_t bytes, cudaStream_t stream) {
  if (ptr_ && bytes <= bytes_) return ptr_;
  bytes = std::max({bytes, bytes_ + bytes_ / 2, size_t{256}});  // geometric: few regrowths (each one syncs)
  if (ptr_) {
    UPCYCLE_CUDA_CHECK(cudaStreamSynchronize(stream));  // queued kernels may still read the old block
    UPCYCLE_CUDA_CHECK(cudaFree(ptr_));
    ptr_ = nullptr;
    bytes_ = 0;
  }
  UPCYCLE_CUDA_CHECK(cudaMalloc(&ptr_, bytes));
  bytes_ = bytes;
  return ptr_;
}

RoutingState::RoutingState(cudaStream_t s) : stream(s) {}
RoutingState::~RoutingState() = default;

}  // namespace cuda_detail

cuda_detail::RoutingState& CudaBackend::routing_state() {
  if (!routing_) routing_ = std::make_unique<cuda_detail::RoutingState>(stream_);
  return *routing_;
}

namespace {

using cuda_detail::RoutingState;
using Spec = Backend::MoeRouteSpec;

// --- Launch helpers: cuda_kernels_common.cuh's ---
using cuda_detail::block_tree_sum;
using cuda_detail::grid_for;
using cuda_detail::grid_stride;
using cuda_detail::grid_thread_index;
constexpr int kThreads = cuda_detail::kThreadsPerBlock;
constexpr int kReduceThreads = 256;  // the one block of the fixed-order final sums (a power of two)

// --- Jitter ---

// core/rng.h's mix64 (SplitMix64's finaliser), on the device: CounterRng::bits(i) = mix64(key ^ mix64(i)).
__device__ inline uint64_t mix64_device(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// noise[i] = float((1 − j) + (2j)·u_i), u_i = CounterRng::uniform(i) = (bits >> 11)·2⁻⁵³.
__global__ void jitter_forward_kernel(float* x_noisy, float* noise, const float* x, int64_t n, uint64_t key, double low,
                                      double span) {
  for (int64_t i = grid_thread_index(); i < n; i += grid_stride()) {
    const double u = double(mix64_device(key ^ mix64_device(uint64_t(i))) >> 11) * 0x1.0p-53;
    const float z = float(__dadd_rn(low, __dmul_rn(span, u)));
    noise[i] = z;
    x_noisy[i] = __fmul_rn(x[i], z);
  }
}

__global__ void jitter_backward_kernel(float* dx, const float* dx_noisy, const float* noise, int64_t n) {
  for (int64_t i = grid_thread_index(); i < n; i += grid_stride())
    dx[i] = __fadd_rn(dx[i], __fmul_rn(dx_noisy[i], noise[i]));
}

// --- The routing decision ---

constexpr int64_t kMaxRouteExperts = 1024;  // the per-thread selection masks below
constexpr int kMaskWords = int(kMaxRouteExperts / 32);

__device__ inline bool mask_has(const uint32_t* mask, int i) { return (mask[i >> 5] >> (i & 31)) & 1u; }
__device__ inline void mask_set(uint32_t* mask, int i) { mask[i >> 5] |= 1u << (i & 31); }

// moe_rules::ByScore: a before b when its score is higher, or equal with a lower index.
__device__ inline bool ranks_before(float score_a, int a, float score_b, int b) {
  return score_a > score_b || (score_a == score_b && a < b);
}
// The selection score of expert e: p + bias (a float add, as the ref's score_E), or p.
__device__ inline float selection_score(const float* p_E, const float* bias_E, int e) {
  return bias_E ? __fadd_rn(p_E[e], bias_E[e]) : p_E[e];
}

// A group's score: the float sum of its two best selection scores (moe_route_rules.cpp's eligible_experts).
__device__ float group_score(const float* p_E, const float* bias_E, int first, int per_group) {
  int best = -1, second = -1;
  float best_s = 0.0f, second_s = 0.0f;
  for (int e = first; e < first + per_group; ++e) {
    const float s = selection_score(p_E, bias_E, e);
    if (best < 0 || ranks_before(s, e, best_s, best)) {
      second = best, second_s = best_s;
      best = e, best_s = s;
    } else if (second < 0 || ranks_before(s, e, second_s, second)) {
      second = e, second_s = s;
    }
  }
  return __fadd_rn(best_s, second_s);
}

struct TopkShape {
  int64_t T, E, K, n_group, topk_group;
  bool sigmoid_scores;
};

// One thread per token: moe_rules::token_topk. Each pick is the best not-yet-picked eligible expert under
// a strict total order, so the picks equal the ref's partial_sort, best first; topk_sum adds their p in
// that order (from 1e-20 for sigmoid scores).
__global__ void token_topk_kernel(int32_t* topk, double* topk_sum, const float* probs_TE, const float* bias_E,
                                  TopkShape s) {
  const int E = int(s.E), G = int(s.n_group), per_group = int(s.E / s.n_group);
  for (int64_t t = grid_thread_index(); t < s.T; t += grid_stride()) {
    const float* p_E = probs_TE + t * s.E;
    uint32_t groups[kMaskWords / 2] = {};  // G ≤ E/2 eligible groups
    if (G > 1) {
      for (int pick = 0; pick < int(s.topk_group); ++pick) {
        int best = -1;
        float best_s = 0.0f;
        for (int g = 0; g < G; ++g) {
          if (mask_has(groups, g)) continue;
          const float gs = group_score(p_E, bias_E, g * per_group, per_group);
          if (best < 0 || ranks_before(gs, g, best_s, best)) best = g, best_s = gs;
        }
        mask_set(groups, best);
      }
    }
    uint32_t picked[kMaskWords] = {};
    double sum = s.sigmoid_scores ? 1e-20 : 0.0;
    for (int k = 0; k < int(s.K); ++k) {
      int best = -1;
      float best_s = 0.0f;
      for (int e = 0; e < E; ++e) {
        if (mask_has(picked, e) || (G > 1 && !mask_has(groups, e / per_group))) continue;
        const float sc = selection_score(p_E, bias_E, e);
        if (best < 0 || ranks_before(sc, e, best_s, best)) best = e, best_s = sc;
      }
      mask_set(picked, best);
      topk[t * s.K + k] = best;
      sum = __dadd_rn(sum, double(p_E[best]));
    }
    topk_sum[t] = sum;
  }
}

// A 32-bit key that sorts floats by decreasing value (−0 and +0 alike, as == treats them).
__device__ inline uint32_t descending_bits(float p) {
  const uint32_t b = __float_as_uint(p == 0.0f ? 0.0f : p);
  const uint32_t ascending = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
  return ~ascending;
}
__device__ inline uint64_t key_by_token(int64_t e, int64_t t, int tbits) {
  return (uint64_t(e) << tbits) | uint64_t(t);
}
__device__ inline uint64_t key_by_score(int64_t e, float p, int64_t t, int tbits) {
  return (uint64_t(e) << (32 + tbits)) | (uint64_t(descending_bits(p)) << tbits) | uint64_t(t);
}

// Candidate i = t·K + k (token t's k-th pick) keyed by token or by score, with i as its value.
__global__ void token_candidate_keys_kernel(uint64_t* keys, int32_t* pair, const int32_t* topk, const float* probs_TE,
                                            int64_t T, int64_t E, int64_t K, int tbits, bool by_score) {
  for (int64_t i = grid_thread_index(); i < T * K; i += grid_stride()) {
    const int64_t t = i / K, e = topk[i];
    keys[i] = by_score ? key_by_score(e, probs_TE[t * E + e], t, tbits) : key_by_token(e, t, tbits);
    pair[i] = int32_t(i);
  }
}

// begin[e] = the first sorted key of expert e (keys hold e from bit `shift` up), for e ≤ E (begin[E] = n).
__global__ void expert_begin_kernel(int64_t* begin, const uint64_t* sorted, int64_t n, int64_t E, int shift) {
  for (int64_t e = grid_thread_index(); e <= E; e += grid_stride()) {
    const uint64_t first = uint64_t(e) << shift;
    int64_t lo = 0, hi = n;
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (sorted[mid] < first)
        lo = mid + 1;
      else
        hi = mid;
    }
    begin[e] = lo;
  }
}

// After the sort by score: a candidate is kept iff its rank inside its expert's segment is < capacity.
__global__ void capacity_keep_kernel(int32_t* keep_pair, const uint64_t* sorted, const int32_t* pair_sorted,
                                     const int64_t* begin, int64_t n, int tbits, int64_t capacity) {
  for (int64_t j = grid_thread_index(); j < n; j += grid_stride()) {
    const int64_t e = int64_t(sorted[j] >> (32 + tbits));
    keep_pair[pair_sorted[j]] = (j - begin[e]) < capacity ? 1 : 0;
  }
}

__global__ void gather_keep_kernel(int32_t* keep_sorted, const int32_t* keep_pair, const int32_t* pair_sorted,
                                   int64_t n) {
  for (int64_t j = grid_thread_index(); j < n; j += grid_stride()) keep_sorted[j] = keep_pair[pair_sorted[j]];
}

// counts, offsets and dropped from the candidate segments (one thread: E is small, the prefix is serial).
__global__ void token_choice_index_kernel(int64_t* offsets, int64_t* counts, int64_t* dropped, const int64_t* begin,
                                          int64_t E, int64_t capacity) {
  int64_t kept = 0, lost = 0;
  offsets[0] = 0;
  for (int64_t e = 0; e < E; ++e) {
    const int64_t count = begin[e + 1] - begin[e], keep = count < capacity ? count : capacity;
    counts[e] = count;
    kept += keep;
    lost += count - keep;
    offsets[e + 1] = kept;
  }
  dropped[0] = lost;
}

// moe_rules::combine_weight.
__device__ inline float combine_weight(float p, double topk_sum, bool renormalize, double scaling) {
  const double pd = p;
  return float(__dmul_rn(renormalize ? __ddiv_rn(pd, topk_sum) : pd, scaling));
}

struct RouteOutPtrs {
  int32_t* token;
  int32_t* expert;
  float* weight;
  float* probability;
};

// Writes the candidates sorted by (expert, token) that survive the cut (keep_sorted null: all) at their
// positions (position null: the sorted index). Expert choice passes topk_sum null: weight = p.
__global__ void write_assignments_kernel(RouteOutPtrs out, const uint64_t* sorted, const int32_t* keep_sorted,
                                         const int32_t* position, const float* probs_TE, const double* topk_sum,
                                         int64_t n, int64_t E, int tbits, bool renormalize, double scaling) {
  const uint64_t token_mask = (uint64_t(1) << tbits) - 1;
  for (int64_t j = grid_thread_index(); j < n; j += grid_stride()) {
    if (keep_sorted && !keep_sorted[j]) continue;
    const int64_t a = position ? position[j] : j;
    const int64_t t = int64_t(sorted[j] & token_mask), e = int64_t(sorted[j] >> tbits);
    const float p = probs_TE[t * E + e];
    out.token[a] = int32_t(t);
    out.expert[a] = int32_t(e);
    out.probability[a] = p;
    out.weight[a] = topk_sum ? combine_weight(p, topk_sum[t], renormalize, scaling) : p;
  }
}

// Expert choice: every (token, expert) pair keyed by (expert, p descending, token).
__global__ void expert_choice_keys_kernel(uint64_t* keys, const float* probs_TE, int64_t T, int64_t E, int tbits) {
  for (int64_t i = grid_thread_index(); i < T * E; i += grid_stride()) {
    const int64_t t = i / E, e = i % E;
    keys[i] = key_by_score(e, probs_TE[i], t, tbits);
  }
}

// Expert e's segment of the score-sorted keys is [e·T, (e+1)·T); its first C are kept, re-keyed by token.
__global__ void expert_choice_kept_kernel(uint64_t* kept_keys, const uint64_t* sorted, int64_t T, int64_t E, int64_t C,
                                          int tbits) {
  const uint64_t token_mask = (uint64_t(1) << tbits) - 1;
  for (int64_t j = grid_thread_index(); j < E * C; j += grid_stride()) {
    const int64_t e = j / C, r = j % C;
    kept_keys[j] = key_by_token(e, int64_t(sorted[e * T + r] & token_mask), tbits);
  }
}

__global__ void expert_choice_index_kernel(int64_t* offsets, int64_t* counts, int64_t* dropped, int64_t E, int64_t C) {
  for (int64_t e = grid_thread_index(); e <= E; e += grid_stride()) {
    offsets[e] = e * C;
    if (e < E) counts[e] = C;
    if (e == 0) dropped[0] = 0;
  }
}

__global__ void first_non_finite_kernel(unsigned long long* first, const float* x, int64_t n) {
  for (int64_t i = grid_thread_index(); i < n; i += grid_stride())
    if (!isfinite(x[i])) atomicMin(first, (unsigned long long)i);  // an integer minimum: order-free
}

// Bits that hold every value below n (at least 1).
int bits_for(int64_t n) {
  int bits = 1;
  while (bits < 63 && (int64_t(1) << bits) < n) ++bits;
  return bits;
}

// cub's radix sort of n keys (and values) over bits [0, end_bit), into the *_sorted outputs.
void radix_sort(RoutingState& rs, const uint64_t* keys, uint64_t* keys_sorted, const int32_t* values,
                int32_t* values_sorted, int64_t n, int end_bit) {
  size_t bytes = 0;
  if (values) {
    UPCYCLE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, keys, keys_sorted, values, values_sorted, int(n),
                                                       0, end_bit, rs.stream));
    void* temp = rs.cub_temp.reserve(bytes, rs.stream);
    UPCYCLE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp, bytes, keys, keys_sorted, values, values_sorted, int(n), 0,
                                                       end_bit, rs.stream));
  } else {
    UPCYCLE_CUDA_CHECK(
        cub::DeviceRadixSort::SortKeys(nullptr, bytes, keys, keys_sorted, int(n), 0, end_bit, rs.stream));
    void* temp = rs.cub_temp.reserve(bytes, rs.stream);
    UPCYCLE_CUDA_CHECK(cub::DeviceRadixSort::SortKeys(temp, bytes, keys, keys_sorted, int(n), 0, end_bit, rs.stream));
  }
}

void exclusive_sum(RoutingState& rs, const int32_t* in, int32_t* out, int64_t n) {
  size_t bytes = 0;
  UPCYCLE_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(nullptr, bytes, in, out, int(n), rs.stream));
  void* temp = rs.cub_temp.reserve(bytes, rs.stream);
  UPCYCLE_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(temp, bytes, in, out, int(n), rs.stream));
}

// check_moe_route's non-finite half on the device, in two steps around the routing kernels (whose
// indices stay in bounds whatever the scores): queue the search for the first bad score and bias
// index, then download them (this synchronises, where the layer's index download would anyway) and
// report them with the ref's messages.
unsigned long long* queue_finite_check(RoutingState& rs, const float* probs_TE, int64_t n, const float* bias_E,
                                       int64_t E) {
  auto* first = rs.get<unsigned long long>(rs.bad_index, 2);
  UPCYCLE_CUDA_CHECK(cudaMemsetAsync(first, 0xff, 2 * sizeof(unsigned long long), rs.stream));
  if (n > 0) {
    first_non_finite_kernel<<<grid_for(n), kThreads, 0, rs.stream>>>(first, probs_TE, n);
    UPCYCLE_CUDA_LAUNCH_CHECK();
  }
  if (bias_E) {
    first_non_finite_kernel<<<grid_for(E), kThreads, 0, rs.stream>>>(first + 1, bias_E, E);
    UPCYCLE_CUDA_LAUNCH_CHECK();
  }
  return first;
}

void report_finite_check(RoutingState& rs, const unsigned long long* first, const float* probs_TE,
                         const float* bias_E, int64_t E) {
  unsigned long long host[2];
  UPCYCLE_CUDA_CHECK(cudaMemcpyAsync(host, first, sizeof(host), cudaMemcpyDeviceToHost, rs.stream));
  UPCYCLE_CUDA_CHECK(cudaStreamSynchronize(rs.stream));
  auto index = [](unsigned long long v) { return v == ~0ull ? int64_t{-1} : int64_t(v); };
  const int64_t bad_score = index(host[0]), bad_bias = index(host[1]);
  // Only on failure: the offending values, for the message (one more synchronous read of 4-8 bytes).
  float score = 0.0f, bias = 0.0f;
  if (bad_score >= 0)
    UPCYCLE_CUDA_CHECK(cudaMemcpyAsync(&score, probs_TE + bad_score, sizeof(float), cudaMemcpyDeviceToHost, rs.stream));
  if (bad_bias >= 0)
    UPCYCLE_CUDA_CHECK(cudaMemcpyAsync(&bias, bias_E + bad_bias, sizeof(float), cudaMemcpyDeviceToHost, rs.stream));
  if (bad_score >= 0 || bad_bias >= 0) UPCYCLE_CUDA_CHECK(cudaStreamSynchronize(rs.stream));
  check_moe_route_finite(bad_score, score, bad_bias, bias, E);
}

void zero_index(const Backend::MoeRouteOut& out, int64_t E, cudaStream_t stream) {
  UPCYCLE_CUDA_CHECK(cudaMemsetAsync(out.offsets, 0, size_t(E + 1) * sizeof(int64_t), stream));
  UPCYCLE_CUDA_CHECK(cudaMemsetAsync(out.counts, 0, size_t(E) * sizeof(int64_t), stream));
  UPCYCLE_CUDA_CHECK(cudaMemsetAsync(out.dropped, 0, sizeof(int64_t), stream));
}

void route_token_choice(RoutingState& rs, const Backend::MoeRouteOut& out, const float* probs_TE, const float* bias_E,
                        const Spec& spec) {
  const int64_t T = spec.tokens, E = spec.experts, K = spec.top_k, n = T * K;
  if (T == 0) return zero_index(out, E, rs.stream);
  const int tbits = bits_for(T), ebits = bits_for(E);
  const TopkShape shape{T, E, K, spec.n_group, spec.topk_group, spec.sigmoid_scores};
  token_topk_kernel<<<grid_for(T), kThreads, 0, rs.stream>>>(out.topk, out.topk_sum, probs_TE, bias_E, shape);
  UPCYCLE_CUDA_LAUNCH_CHECK();

  auto* keys = rs.get<uint64_t>(rs.keys, size_t(n));
  auto* keys_sorted = rs.get<uint64_t>(rs.keys_sorted, size_t(n));
  auto* pair = rs.get<int32_t>(rs.values, size_t(n));
  auto* pair_sorted = rs.get<int32_t>(rs.values_sorted, size_t(n));
  auto* begin = rs.get<int64_t>(rs.expert_begin, size_t(E + 1));
  // An expert has at most T candidates (a token picks it once), so a capacity ≥ T drops nothing.
  const bool cut = spec.capacity < T;
  int32_t* keep_pair = nullptr;
  if (cut) {
    keep_pair = rs.get<int32_t>(rs.keep_pair, size_t(n));
    token_candidate_keys_kernel<<<grid_for(n), kThreads, 0, rs.stream>>>(keys, pair, out.topk, probs_TE, T, E, K,
                                                                             tbits, true);
    UPCYCLE_CUDA_LAUNCH_CHECK();
    radix_sort(rs, keys, keys_sorted, pair, pair_sorted, n, ebits + 32 + tbits);
    expert_begin_kernel<<<grid_for(E + 1), kThreads, 0, rs.stream>>>(begin, keys_sorted, n, E, 32 + tbits);
    UPCYCLE_CUDA_LAUNCH_CHECK();
    capacity_keep_kernel<<<grid_for(n), kThreads, 0, rs.stream>>>(keep_pair, keys_sorted, pair_sorted, begin, n,
                                                                      tbits, spec.capacity);
    UPCYCLE_CUDA_LAUNCH_CHECK();
  }
  token_candidate_keys_kernel<<<grid_for(n), kThreads, 0, rs.stream>>>(keys, pair, out.topk, probs_TE, T, E, K,
                                                                           tbits, false);
  UPCYCLE_CUDA_LAUNCH_CHECK();
  radix_sort(rs, keys, keys_sorted, pair, pair_sorted, n, ebits + tbits);
  if (!cut) {
    expert_begin_kernel<<<grid_for(E + 1), kThreads, 0, rs.stream>>>(begin, keys_sorted, n, E, tbits);
    UPCYCLE_CUDA_LAUNCH_CHECK();
  }
  token_choice_index_kernel<<<1, 1, 0, rs.stream>>>(out.offsets, out.counts, out.dropped, begin, E, spec.capacity);
  UPCYCLE_CUDA_LAUNCH_CHECK();

  int32_t *keep_sorted = nullptr, *position = nullptr;
  if (cut) {
    keep_sorted = rs.get<int32_t>(rs.keep_sorted, size_t(n));
    position = rs.get<int32_t>(rs.position, size_t(n));
    gather_keep_kernel<<<grid_for(n), kThreads, 0, rs.stream>>>(keep_sorted, keep_pair, pair_sorted, n);
    UPCYCLE_CUDA_LAUNCH_CHECK();
    exclusive_sum(rs, keep_sorted, position, n);
  }
  const RouteOutPtrs ptrs{out.token, out.expert, out.weight, out.probability};
  write_assignments_kernel<<<grid_for(n), kThreads, 0, rs.stream>>>(
      ptrs, keys_sorted, keep_sorted, position, probs_TE, out.topk_sum, n, E, tbits, spec.renormalize, spec.scaling);
  UPCYCLE_CUDA_LAUNCH_CHECK();
}

void route_expert_choice(RoutingState& rs, const Backend::MoeRouteOut& out, const float* probs_TE, const Spec& spec) {
  const int64_t T = spec.tokens, E = spec.experts, C = spec.capacity;
  if (T == 0 || C == 0) {
    zero_index(out, E, rs.stream);
    if (C == 0) return;
  }
  const int tbits = bits_for(T), ebits = bits_for(E);
  auto* keys = rs.get<uint64_t>(rs.keys, size_t(T * E));
  auto* keys_sorted = rs.get<uint64_t>(rs.keys_sorted, size_t(T * E));
  expert_choice_keys_kernel<<<grid_for(T * E), kThreads, 0, rs.stream>>>(keys, probs_TE, T, E, tbits);
  UPCYCLE_CUDA_LAUNCH_CHECK();
  radix_sort(rs, keys, keys_sorted, nullptr, nullptr, T * E, ebits + 32 + tbits);
  expert_choice_kept_kernel<<<grid_for(E * C), kThreads, 0, rs.stream>>>(keys, keys_sorted, T, E, C, tbits);
  UPCYCLE_CUDA_LAUNCH_CHECK();
  radix_sort(rs, keys, keys_sorted, nullptr, nullptr, E * C, ebits + tbits);
  expert_choice_index_kernel<<<grid_for(E + 1), kThreads, 0, rs.stream>>>(out.offsets, out.counts, out.dropped, E,
                                                                              C);
  UPCYCLE_CUDA_LAUNCH_CHECK();
  const RouteOutPtrs ptrs{out.token, out.expert, out.weight, out.probability};
  write_assignments_kernel<<<grid_for(E * C), kThreads, 0, rs.stream>>>(
      ptrs, keys_sorted, nullptr, nullptr, probs_TE, nullptr, E * C, E, tbits, false, 1.0);
  UPCYCLE_CUDA_LAUNCH_CHECK();
}

// --- The routing backward ---

__global__ void scatter_assignments_kernel(int32_t* assignment_TE, const int32_t* token, const int32_t* expert,
                                           int64_t kept, int64_t E) {
  for (int64_t a = grid_thread_index(); a < kept; a += grid_stride())
    assignment_TE[int64_t(token[a]) * E + expert[a]] = int32_t(a);  // (token, expert) pairs are distinct
}

// Σ_a g_a·p_a over token t's kept assignments in increasing a (= increasing expert): the ref's gp_T.
__global__ void token_gp_kernel(double* gp_T, const int32_t* assignment_TE, const float* dweight_A,
                                const float* probability_A, int64_t T, int64_t E) {
  for (int64_t t = grid_thread_index(); t < T; t += grid_stride()) {
    double gp = 0.0;
    for (int64_t e = 0; e < E; ++e) {
      const int32_t a = assignment_TE[t * E + e];
      if (a >= 0) gp = __dadd_rn(gp, __dmul_rn(double(dweight_A[a]), double(probability_A[a])));
    }
    gp_T[t] = gp;
  }
}

__global__ void sum_counts_kernel(int64_t* total, const int64_t* counts_E, int64_t E) {
  int64_t sum = 0;
  for (int64_t e = 0; e < E; ++e) sum += counts_E[e];
  total[0] = sum;
}

struct RouteBackwardArgs {
  const int32_t* assignment_TE;
  const float* dweight_A;
  const int32_t* topk;     // renormalised token choice only
  const double* topk_sum;  // renormalised token choice only
  const double* gp_T;      // renormalised token choice only
  const int64_t* counts_E;
  const int64_t* total;  // A = Σ counts
  const double* dirichlet_dprobs_TE;
  int64_t T, E, K;
  bool renormalized;  // token choice with renormalisation: the quotient rule's second term
  double scale;       // the weight's factor: scaling (token choice) or 1 (expert choice)
  double aux_coef, dirichlet_coef;
};

// One element (t, e) of the ref's double accumulator, in the ref's order: the kept weight's term, the
// renormalisation term of a top-k pick, the aux loss, the Dirichlet gradient; rounded once.
__global__ void route_backward_kernel(float* dprobs_TE, RouteBackwardArgs r) {
  for (int64_t i = grid_thread_index(); i < r.T * r.E; i += grid_stride()) {
    const int64_t t = i / r.E, e = i % r.E;
    const int32_t a = r.assignment_TE[i];
    double acc = 0.0;
    if (!r.renormalized) {
      if (a >= 0) acc = __dadd_rn(acc, __dmul_rn(r.scale, double(r.dweight_A[a])));
    } else {
      const double S = r.topk_sum[t];
      if (a >= 0) acc = __dadd_rn(acc, __ddiv_rn(__dmul_rn(r.scale, double(r.dweight_A[a])), S));
      for (int64_t k = 0; k < r.K; ++k)
        if (r.topk[t * r.K + k] == e) {
          acc = __dsub_rn(acc, __ddiv_rn(__dmul_rn(r.scale, r.gp_T[t]), __dmul_rn(S, S)));
          break;
        }
    }
    const int64_t A = r.total[0];
    if (A > 0 && r.aux_coef != 0.0) {
      const double num = __dmul_rn(__dmul_rn(r.aux_coef, double(r.E)), double(r.counts_E[e]));
      acc = __dadd_rn(acc, __ddiv_rn(num, __dmul_rn(double(A), double(r.T))));
    }
    if (r.dirichlet_dprobs_TE) acc = __dadd_rn(acc, __dmul_rn(r.dirichlet_coef, r.dirichlet_dprobs_TE[i]));
    dprobs_TE[i] = float(acc);
  }
}

// --- Losses and statistics ---

// Column sums of p[T,E] in increasing t (the ref's mean_p loop, before its division).
__global__ void column_sums_kernel(double* sum_E, const float* probs_TE, int64_t T, int64_t E) {
  for (int64_t e = grid_thread_index(); e < E; e += grid_stride()) {
    double s = 0.0;
    for (int64_t t = 0; t < T; ++t) s = __dadd_rn(s, double(probs_TE[t * E + e]));
    sum_E[e] = s;
  }
}

__global__ void aux_loss_kernel(double* loss, const double* sum_E, const int64_t* counts_E, int64_t T, int64_t E) {
  int64_t A = 0;
  for (int64_t e = 0; e < E; ++e) A += counts_E[e];
  if (T == 0 || A == 0) {
    loss[0] = 0.0;
    return;
  }
  double sum = 0.0;
  for (int64_t e = 0; e < E; ++e) sum = __dadd_rn(sum, __ddiv_rn(__dmul_rn(double(counts_E[e]), sum_E[e]), double(T)));
  loss[0] = __ddiv_rn(__dmul_rn(sum, double(E)), double(A));
}

// moe_rules::logsumexp_row per thread: the max with std::max's comparison, then Σ exp(x − max) in order.
__global__ void logsumexp_rows_kernel(double* lse_T, const float* x_TE, int64_t T, int64_t E) {
  for (int64_t t = grid_thread_index(); t < T; t += grid_stride()) {
    const float* x_E = x_TE + t * E;
    double max_logit = -INFINITY;
    for (int64_t e = 0; e < E; ++e) max_logit = max_logit < double(x_E[e]) ? double(x_E[e]) : max_logit;
    double denom = 0.0;
    for (int64_t e = 0; e < E; ++e) denom = __dadd_rn(denom, exp(__dsub_rn(double(x_E[e]), max_logit)));
    lse_T[t] = __dadd_rn(max_logit, log(denom));
  }
}

// moe_rules::z_loss: serial in token order, like the ref (T terms).
__global__ void z_loss_kernel(double* loss, const double* lse_T, int64_t T) {
  double sum = 0.0;
  for (int64_t t = 0; t < T; ++t) sum = __dadd_rn(sum, __dmul_rn(lse_T[t], lse_T[t]));
  loss[0] = T > 0 ? __ddiv_rn(sum, double(T)) : 0.0;
}

__global__ void z_loss_backward_kernel(float* dlogits_TE, const float* probs_TE, const double* lse_T, int64_t T,
                                       int64_t E, double coef) {
  for (int64_t i = grid_thread_index(); i < T * E; i += grid_stride()) {
    const double grad =
        __ddiv_rn(__dmul_rn(__dmul_rn(__dmul_rn(coef, 2.0), lse_T[i / E]), double(probs_TE[i])), double(T));
    dlogits_TE[i] = float(__dadd_rn(double(dlogits_TE[i]), grad));
  }
}

__global__ void shared_gate_forward_kernel(float* y_TD, const float* ys_TD, const float* sigma_T, int64_t T,
                                           int64_t D) {
  for (int64_t i = grid_thread_index(); i < T * D; i += grid_stride())
    y_TD[i] = __fadd_rn(y_TD[i], __fmul_rn(sigma_T[i / D], ys_TD[i]));
}

__global__ void shared_gate_dys_kernel(float* dys_TD, const float* dy_TD, const float* sigma_T, int64_t T, int64_t D) {
  for (int64_t i = grid_thread_index(); i < T * D; i += grid_stride())
    dys_TD[i] = __fadd_rn(dys_TD[i], __fmul_rn(sigma_T[i / D], dy_TD[i]));
}

// dz[t] += float(Σ_d dy·ys)·(σ(1−σ)): one thread per token, the dot in increasing d as the ref.
__global__ void shared_gate_dz_kernel(float* dz_T, const float* dy_TD, const float* ys_TD, const float* sigma_T,
                                      int64_t T, int64_t D) {
  for (int64_t t = grid_thread_index(); t < T; t += grid_stride()) {
    double dot = 0.0;
    for (int64_t d = 0; d < D; ++d) dot = __dadd_rn(dot, __dmul_rn(double(dy_TD[t * D + d]), double(ys_TD[t * D + d])));
    const float s = sigma_T[t];
    dz_T[t] = __fadd_rn(dz_T[t], __fmul_rn(float(dot), __fmul_rn(s, __fsub_rn(1.0f, s))));
  }
}

// Per token: Σ_e p·log p (p over the row's sum when normalising) and max_e p, each in increasing e.
__global__ void router_stats_rows_kernel(double* plogp_T, double* top_T, const float* probs_TE, int64_t T, int64_t E,
                                         bool normalize_rows) {
  for (int64_t t = grid_thread_index(); t < T; t += grid_stride()) {
    const float* p_E = probs_TE + t * E;
    double norm = 1.0;
    if (normalize_rows) {
      norm = 0.0;
      for (int64_t e = 0; e < E; ++e) norm = __dadd_rn(norm, double(p_E[e]));
    }
    double plogp = 0.0, top = 0.0;
    for (int64_t e = 0; e < E; ++e) {
      const double p = __ddiv_rn(double(p_E[e]), norm);
      if (p > 0) plogp = __dadd_rn(plogp, __dmul_rn(p, log(p)));
      top = top < p ? p : top;
    }
    plogp_T[t] = plogp;
    top_T[t] = top;
  }
}

// One block: out[0] = −Σ plogp / T, out[1] = Σ top / T, each Σ strided per thread then a fixed tree.
__global__ void router_stats_total_kernel(double* out, const double* plogp_T, const double* top_T, int64_t T) {
  __shared__ double shared[kReduceThreads];
  double h = 0.0, top = 0.0;
  for (int64_t t = threadIdx.x; t < T; t += kReduceThreads) {
    h = __dadd_rn(h, plogp_T[t]);
    top = __dadd_rn(top, top_T[t]);
  }
  h = block_tree_sum<kReduceThreads>(h, shared);
  top = block_tree_sum<kReduceThreads>(top, shared);
  if (threadIdx.x == 0) {
    out[0] = T > 0 ? __ddiv_rn(__dsub_rn(0.0, h), double(T)) : 0.0;  // 0 − h: never −0
    out[1] = T > 0 ? __ddiv_rn(top, double(T)) : 0.0;
  }
}

}  // namespace

void CudaBackend::moe_jitter_forward(float* x_noisy, float* noise, const float* x, int64_t n, uint64_t seed,
                                     double jitter) {
  if (n <= 0) return;
  const uint64_t key = moe_rules::jitter_stream_key(seed);
  jitter_forward_kernel<<<grid_for(n), kThreads, 0, stream_>>>(x_noisy, noise, x, n, key, 1.0 - jitter,
                                                                   2.0 * jitter);
  UPCYCLE_CUDA_LAUNCH_CHECK();
}

void CudaBackend::moe_jitter_backward(float* dx, const float* dx_noisy, const float* noise, int64_t n) {
  if (n <= 0) return;
  jitter_backward_kernel<<<grid_for(n), kThreads, 0, stream_>>>(dx, dx_noisy, noise, n);
  UPCYCLE_CUDA_LAUNCH_CHECK();
}

void CudaBackend::moe_route(const MoeRouteOut& out, const float* probs_TE, const float* bias_E,
                            const MoeRouteSpec& spec) {
  check_moe_route_spec(spec);
  const int64_t T = spec.tokens, E = spec.experts;
  UPCYCLE_CHECK(E <= kMaxRouteExperts, "cuda moe_route: at most " + std::to_string(kMaxRouteExperts) + " experts");
  // Keys pack (expert, p, token) into 64 bits; cub counts items in int.
  UPCYCLE_CHECK(bits_for(E) + 32 + bits_for(T) <= 64 && T * std::max(E, spec.top_k) < (int64_t(1) << 31),
                "cuda moe_route: too many tokens for the 64-bit sort keys");
  RoutingState& rs = routing_state();
  const unsigned long long* bad =
      queue_finite_check(rs, probs_TE, T * E, bias_E && !spec.expert_choice ? bias_E : nullptr, E);
  if (spec.expert_choice)
    route_expert_choice(rs, out, probs_TE, spec);
  else
    route_token_choice(rs, out, probs_TE, bias_E, spec);
  report_finite_check(rs, bad, probs_TE, bias_E, E);  // on a throw the outputs hold a decision over non-finite scores: unspecified
}

void CudaBackend::moe_route_backward(float* dprobs_TE, const float* dweight_A, const MoeRouteOut& routing, int64_t kept,
                                     const MoeRouteSpec& spec, double aux_coef, const double* dirichlet_dprobs_TE,
                                     double dirichlet_coef) {
  const int64_t T = spec.tokens, E = spec.experts;
  if (T * E == 0) return;
  RoutingState& rs = routing_state();
  auto* assignment_TE = rs.get<int32_t>(rs.assignment_TE, size_t(T * E));
  UPCYCLE_CUDA_CHECK(cudaMemsetAsync(assignment_TE, 0xff, size_t(T * E) * sizeof(int32_t), stream_));  // −1: none
  if (kept > 0) {
    scatter_assignments_kernel<<<grid_for(kept), kThreads, 0, stream_>>>(assignment_TE, routing.token,
                                                                             routing.expert, kept, E);
    UPCYCLE_CUDA_LAUNCH_CHECK();
  }
  const bool renormalized = !spec.expert_choice && spec.renormalize;
  double* gp_T = nullptr;
  if (renormalized) {
    gp_T = rs.get<double>(rs.per_token, size_t(T));
    token_gp_kernel<<<grid_for(T), kThreads, 0, stream_>>>(gp_T, assignment_TE, dweight_A, routing.probability, T,
                                                               E);
    UPCYCLE_CUDA_LAUNCH_CHECK();
  }
  auto* total = rs.get<int64_t>(rs.total, 1);
  sum_counts_kernel<<<1, 1, 0, stream_>>>(total, routing.counts, E);
  UPCYCLE_CUDA_LAUNCH_CHECK();
  const RouteBackwardArgs args{assignment_TE,
                               dweight_A,
                               routing.topk,
                               routing.topk_sum,
                               gp_T,
                               routing.counts,
                               total,
                               dirichlet_dprobs_TE,
                               T,
                               E,
                               spec.top_k,
                               renormalized,
                               spec.expert_choice ? 1.0 : spec.scaling,
                               aux_coef,
                               dirichlet_coef};
  route_backward_kernel<<<grid_for(T * E), kThreads, 0, stream_>>>(dprobs_TE, args);
  UPCYCLE_CUDA_LAUNCH_CHECK();
}

void CudaBackend::moe_aux_loss(double* loss, const float* probs_TE, const int64_t* counts_E, int64_t T, int64_t E) {
  RoutingState& rs = routing_state();
  double* sum_E = rs.get<double>(rs.partials, size_t(std::max<int64_t>(E, 1)));
  if (E > 0) {
    column_sums_kernel<<<grid_for(E), kThreads, 0, stream_>>>(sum_E, probs_TE, T, E);
    UPCYCLE_CUDA_LAUNCH_CHECK();
  }
  aux_loss_kernel<<<1, 1, 0, stream_>>>(loss, sum_E, counts_E, T, E);
  UPCYCLE_CUDA_LAUNCH_CHECK();
}

void CudaBackend::logsumexp_rows(double* lse_T, const float* x_TE, int64_t T, int64_t E) {
  if (T <= 0) return;
  logsumexp_rows_kernel<<<grid_for(T), kThreads, 0, stream_>>>(lse_T, x_TE, T, E);
  UPCYCLE_CUDA_LAUNCH_CHECK();
}

void CudaBackend::moe_z_loss(double* loss, const double* lse_T, int64_t T) {
  z_loss_kernel<<<1, 1, 0, stream_>>>(loss, lse_T, T);
  UPCYCLE_CUDA_LAUNCH_CHECK();
}

void CudaBackend::moe_z_loss_backward(float* dlogits_TE, const float* probs_TE, const double* lse_T, int64_t T,
                                      int64_t E, double coef) {
  if (T * E <= 0 || coef == 0.0) return;
  z_loss_backward_kernel<<<grid_for(T * E), kThreads, 0, stream_>>>(dlogits_TE, probs_TE, lse_T, T, E, coef);
  UPCYCLE_CUDA_LAUNCH_CHECK();
}

void CudaBackend::moe_shared_gate_forward(float* y_TD, const float* ys_TD, const float* sigma_T, int64_t T, int64_t D) {
  if (T * D <= 0) return;
  shared_gate_forward_kernel<<<grid_for(T * D), kThreads, 0, stream_>>>(y_TD, ys_TD, sigma_T, T, D);
  UPCYCLE_CUDA_LAUNCH_CHECK();
}

void CudaBackend::moe_shared_gate_backward(float* dys_TD, float* dz_T, const float* dy_TD, const float* ys_TD,
                                           const float* sigma_T, int64_t T, int64_t D) {
  if (T <= 0) return;
  if (T * D > 0) {
    shared_gate_dys_kernel<<<grid_for(T * D), kThreads, 0, stream_>>>(dys_TD, dy_TD, sigma_T, T, D);
    UPCYCLE_CUDA_LAUNCH_CHECK();
  }
  shared_gate_dz_kernel<<<grid_for(T), kThreads, 0, stream_>>>(dz_T, dy_TD, ys_TD, sigma_T, T, D);
  UPCYCLE_CUDA_LAUNCH_CHECK();
}

// On the host (see the file comment): p and the token domains come down, the ref's kernel runs, the
// loss and ∂L/∂p go up. download/upload are synchronous and ordered after the queued ops.
void CudaBackend::dirichlet_prior_loss(double* loss, double* dprobs_TE, const float* probs_TE, int64_t T, int64_t E,
                                       const int32_t* domain_T, const int32_t* prior_of_domain, int64_t domains,
                                       const double* alpha_PE, int64_t priors) {
  std::vector<float> p(size_t(T * E));
  if (!p.empty()) download(p.data(), probs_TE, p.size() * sizeof(float));
  std::vector<int32_t> domain(domain_T ? size_t(T) : 0);
  if (!domain.empty()) download(domain.data(), domain_T, domain.size() * sizeof(int32_t));
  std::vector<double> grad(dprobs_TE ? p.size() : 0);
  double host_loss = 0.0;
  ref::dirichlet_prior_loss_op(&host_loss, dprobs_TE ? grad.data() : nullptr, p.data(), T, E,
                               domain_T ? domain.data() : nullptr, prior_of_domain, domains, alpha_PE, priors);
  upload(loss, &host_loss, sizeof(double));
  if (!grad.empty()) upload(dprobs_TE, grad.data(), grad.size() * sizeof(double));
}

void CudaBackend::moe_router_stats(double* out, const float* probs_TE, int64_t T, int64_t E, bool normalize_rows) {
  RoutingState& rs = routing_state();
  double* rows = rs.get<double>(rs.partials, size_t(2 * std::max<int64_t>(T, 1)));
  if (T > 0) {
    router_stats_rows_kernel<<<grid_for(T), kThreads, 0, stream_>>>(rows, rows + T, probs_TE, T, E, normalize_rows);
    UPCYCLE_CUDA_LAUNCH_CHECK();
  }
  router_stats_total_kernel<<<1, kReduceThreads, 0, stream_>>>(out, rows, rows + T, T);
  UPCYCLE_CUDA_LAUNCH_CHECK();
}

}  // namespace upcycle::backend
