// The engine's closed op set. Model code (src/model) calls these and nothing else, so a CUDA
// backend drops in without touching model, recipe or training code. Implementations:
//   ref  — naive loops with double accumulation: the oracle every other backend is tested against,
//          never used for speed;
//   cpu  — OpenBLAS sgemm + OpenMP kernels;
//   cpu-bf16 — the cpu backend with its linear and grouped-linear products computed from bf16-rounded
//          inputs with fp32 accumulation (oneDNN, AVX512_BF16); everything else identical to cpu;
//   cuda — one NVIDIA GPU (backend/cuda, built when nvcc is found): cpu-bf16's precision on tensor cores.
// Conventions (shape legend: T tokens (all sequences of a batch, row-major [B*Tseq]), D model,
// F ffn, H heads, KV kv heads, S head dim, V vocab, M/K/N generic matmul dims):
//   - all tensors are fp32, row-major, contiguous, in backend memory (host memory for ref/cpu);
//   - Linear weights use HF's layout [out, in]: y = x · wᵀ (+ b);
//   - forward ops overwrite their outputs; backward ops *accumulate* (+=) into parameter gradients
//     and into input gradients, so callers zero gradient buffers once and residual branches simply add;
//   - per-sequence ops (rope, attention) take B and Tseq with T = B·Tseq.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace upcycle::backend {

struct AttentionShape {
  int64_t batch = 1;      // B sequences
  int64_t seq_len = 0;    // Tseq tokens each
  int64_t heads = 0;      // H query heads
  int64_t kv_heads = 0;   // KV heads; H % KV == 0 (GQA: query head h reads kv head h / (H/KV))
  int64_t head_dim = 0;   // S
  int64_t window = 0;     // sliding window (HF semantics: key j visible from query i iff i-window < j <= i); 0 = full causal
  float scale = 0.0f;     // softmax scale, normally 1/sqrt(S)
};

// RoPE rotates by +angle (the forward pass) or by −angle (its transpose: the backward pass).
enum class RopeDirection { kForward, kInverse };

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;

  // --- Memory (model code uses the typed owner Buffer<T>, backend/buffer.h) ---
  // Every tensor an op reads or writes lives in memory from allocate(): zero-filled, aligned for any
  // scalar type, freed by deallocate(). On the host backends (ref, cpu, cpu-bf16) it is ordinary host
  // memory: host_accessible() is true, upload/download are memcpy and synchronize() returns at once.
  // A device backend returns device pointers; the host then reaches them only through upload and
  // download (synchronous: on return the bytes are in place) — the explicit, countable readbacks.
  virtual bool host_accessible() const = 0;
  virtual void* allocate(size_t bytes) = 0;  // throws std::bad_alloc when out of memory
  virtual void deallocate(void* ptr) noexcept = 0;
  virtual void fill_zero(void* ptr, size_t bytes) = 0;
  virtual void upload(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void download(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;  // backend memory → backend memory
  virtual void synchronize() = 0;  // waits for every queued op (a no-op on host backends)

  // y[M,N] = x[M,K] · w[N,K]ᵀ + b[N] (b may be null).
  virtual void linear_forward(float* y, const float* x, const float* w, const float* b, int64_t M, int64_t K,
                              int64_t N) = 0;
  // dx[M,K] += dy·w; dw[N,K] += dyᵀ·x; db[N] += Σ_rows dy. Any of dx, dw, db may be null (skipped).
  virtual void linear_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                               int64_t M, int64_t K, int64_t N) = 0;

  // linear_forward/linear_backward with full fp32 inputs on every backend, also on one whose other
  // matmuls round their inputs (cpu-bf16): for products that feed a discrete decision — the MoE
  // router's logits pick the top-k experts, and a bf16 rounding there would flip near-tied routes.
  virtual void linear_forward_f32(float* y, const float* x, const float* w, const float* b, int64_t M, int64_t K,
                                  int64_t N) {
    linear_forward(y, x, w, b, M, K, N);
  }
  virtual void linear_backward_f32(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                                   int64_t M, int64_t K, int64_t N) {
    linear_backward(dx, dw, db, dy, x, w, M, K, N);
  }

  // y[T,D] = w ⊙ x · rstd, rstd[T] = 1/sqrt(mean(x²) + eps) (saved for backward). HF RMSNorm.
  virtual void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t T, int64_t D,
                               float eps) = 0;
  virtual void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                                const float* rstd, int64_t T, int64_t D) = 0;

  // In-place rotary embedding of x[T, n_heads, S] in HF's rotate_half layout: for i < S/2,
  // (x_i, x_{i+S/2}) ← (x_i·cos − x_{i+S/2}·sin, x_{i+S/2}·cos + x_i·sin), angle = pos(t)·inv_freq[i],
  // pos(t) = t mod seq_len (+ position_offset, for decoding with a KV cache).
  // RopeDirection::kInverse applies the transposed rotation (−angle): the backward pass.
  virtual void rope(float* x, const float* inv_freq, int64_t T, int64_t seq_len, int64_t n_heads, int64_t S,
                    int64_t position_offset, RopeDirection direction) = 0;

  // Causal (optionally sliding-window) softmax attention with GQA.
  // q[T, H, S], k/v[T, KV, S] → out[T, H, S]; lse[T, H] = log Σ exp(scores) saved for backward.
  virtual void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                                 const AttentionShape& shape) = 0;
  virtual void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                                  const float* v, const float* out, const float* lse, const AttentionShape& shape) = 0;
  // Decoding with a KV cache, one sequence: Tn = shape.seq_len new queries q[Tn, H, S] at absolute
  // positions [past, past+Tn) attend to k_cache/v_cache[Tmax, KV, S], whose rows 0..past+Tn−1 are
  // filled (the new tokens' own keys included; rows beyond are not read). Masking (causal, window)
  // and GQA exactly as attention_forward at those absolute positions; out[Tn, H, S] is overwritten.
  // shape.batch must be 1. No lse: decoding never runs backward.
  virtual void attention_decode(float* out, const float* q, const float* k_cache, const float* v_cache, int64_t past,
                                const AttentionShape& shape) = 0;

  // h[n] = silu(g)·u with silu(z) = z·sigmoid(z).
  virtual void swiglu_forward(float* h, const float* g, const float* u, int64_t n) = 0;
  virtual void swiglu_backward(float* dg, float* du, const float* dh, const float* g, const float* u, int64_t n) = 0;

  // x[T,D] = table[ids[t], :]. Its backward, dtable[ids[t], :] += dx[t, :], is scatter_add_rows with
  // unit weights (rows = ids, V table rows), not an op of its own.
  virtual void embedding_forward(float* x, const float* table, const int32_t* ids, int64_t T, int64_t D) = 0;

  // Mean cross-entropy over tokens whose target ≥ 0 (target < 0 = ignored, as HF's -100):
  // returns the loss; dlogits[T,V] = (softmax(logits) − onehot(target)) · dloss / n_counted (overwritten;
  // rows of ignored tokens are zero). logits are not modified.
  virtual double cross_entropy(float* dlogits, const float* logits, const int32_t* targets, int64_t T, int64_t V,
                               float dloss) = 0;

  // y[n] += alpha · x[n]
  virtual void axpy(float* y, const float* x, float alpha, int64_t n) = 0;

  // --- Mixture-of-Experts data path (A assignments, G groups = experts, E experts) ---
  // probs[T,E] = softmax of each row of logits[T,E] (max-subtracted, so large logits cannot overflow).
  virtual void softmax_rows(float* probs, const float* logits, int64_t T, int64_t E) = 0;
  // dlogits[T,E] += probs ⊙ (dprobs − Σ_e dprobs⊙probs), row by row.
  virtual void softmax_rows_backward(float* dlogits, const float* dprobs, const float* probs, int64_t T,
                                     int64_t E) = 0;
  // scores[n] = sigmoid(logits[n]) = 1/(1+exp(−logits[n])) (DeepSeek-V3 router scores), computed in double.
  virtual void sigmoid_forward(float* scores, const float* logits, int64_t n) = 0;
  // dlogits[n] += dscores[n]·scores[n]·(1 − scores[n]).
  virtual void sigmoid_backward(float* dlogits, const float* dscores, const float* scores, int64_t n) = 0;
  // out[a,:] = x[rows[a],:] for a < A; 0 ≤ rows[a] < T, rows may repeat. Its backward is scatter_add_rows.
  virtual void gather_rows(float* out, const float* x, const int32_t* rows, int64_t A, int64_t T, int64_t D) = 0;
  // y[rows[a],:] += weights[a] · x[a,:] for a < A (weights null = all 1). Rows may repeat; the sum over a
  // row's assignments runs in increasing a on every backend, so results never depend on threading.
  virtual void scatter_add_rows(float* y, const float* x, const int32_t* rows, const float* weights, int64_t A,
                                int64_t T, int64_t D) = 0;
  // Backward of scatter_add_rows: dx[a,:] += weights[a]·dy[rows[a],:]; dweights[a] += dy[rows[a],:]·x[a,:].
  // dx or dweights may be null (skipped); weights null = all 1.
  virtual void scatter_add_rows_backward(float* dx, float* dweights, const float* dy, const float* x,
                                         const int32_t* rows, const float* weights, int64_t A, int64_t T,
                                         int64_t D) = 0;
  // Per-group linear without bias: rows offsets[g] ≤ a < offsets[g+1] of x[A,K] are multiplied by w[g]
  // ([N,K], HF layout): y[a,:] = x[a,:]·w[g]ᵀ. offsets[G+1] is non-decreasing from offsets[0] = 0, and
  // A = offsets[G]; empty groups are allowed (their w[g] is never read).
  virtual void grouped_linear_forward(float* y, const float* x, const float* const* w, const int64_t* offsets,
                                      int64_t G, int64_t K, int64_t N) = 0;
  // dx[A,K] += dy·w[g] per group; dw[g][N,K] += dyᵀ·x over the group's rows. dx, dw, or any dw[g] may be
  // null (skipped).
  virtual void grouped_linear_backward(float* dx, float* const* dw, const float* dy, const float* x,
                                       const float* const* w, const int64_t* offsets, int64_t G, int64_t K,
                                       int64_t N) = 0;

  // --- MoE routing and losses (semantics: model/moe_layer.h; callers: model/moe_layer.cpp) ---
  // Every output lives in backend memory with its size bounded before the op runs (the routing
  // arrays hold at most MoeRouteSpec::max_assignments() entries); small option tables (α, the domain →
  // prior map) are host arrays passed by the caller, like scalars. Scalar results (losses, statistics)
  // are written to backend doubles so the layer downloads them together.

  // Router jitter (Switch): noise[i] = float(1 − j + 2j·u_i), x_noisy[i] = x[i]·noise[i] for i < n, with
  // u_i = CounterRng(seed, "moe_jitter").uniform(i): counter i is element i, so the noise depends on
  // (seed, i) only, never on threading or on the backend.
  virtual void moe_jitter_forward(float* x_noisy, float* noise, const float* x, int64_t n, uint64_t seed,
                                  double jitter) = 0;
  // dx[i] += dx_noisy[i]·noise[i] (x_noisy = x ⊙ noise, noise held fixed).
  virtual void moe_jitter_backward(float* dx, const float* dx_noisy, const float* noise, int64_t n) = 0;

  // The whole routing decision over scores p[T,E] (softmax or sigmoid), ties always to the lower index:
  //   token choice: per token the top_k experts by p + bias (bias null = by p), among the topk_group best
  //     of n_group equal expert groups when n_group > 1 (a group scores the float sum of its two best
  //     p + bias); weight = p / Σ_k p (renormalize; + 1e-20 in the sum for sigmoid scores, as HF) or p,
  //     times scaling, computed in double and rounded once; then each expert keeps its `capacity`
  //     highest-p candidates (the rest are dropped).
  //   expert choice: each expert takes its `capacity` highest-p tokens, weight p; the bias is ignored.
  // Outputs (MoeRouteOut): kept assignments sorted by (expert, token): expert e owns rows
  // offsets[e]..offsets[e+1] of token/expert/weight/probability (A = offsets[E] ≤ max_assignments());
  // counts[e] = assignments to e before dropping (the aux loss's count); dropped[0] = dropped
  // assignments; token choice also writes topk[T,K] (each token's picks, best first) and
  // topk_sum[T] (the renormalisation denominator, in double). Throws NonFiniteRouterScores on a
  // non-finite p or bias (a data error: model code names the layer for the user) and an internal
  // error on a spec that does not split E into groups of ≥ 2 holding top_k experts.
  struct MoeRouteSpec {
    int64_t tokens = 0;   // T
    int64_t experts = 0;  // E
    int64_t top_k = 0;    // K (token choice)
    bool expert_choice = false;
    int64_t capacity = 0;  // per expert: token choice keeps ≤ capacity (T·K = dropless); expert choice takes it
    bool renormalize = true;
    bool sigmoid_scores = false;
    double scaling = 1.0;  // routed_scaling_factor (token choice)
    int64_t n_group = 1, topk_group = 1;
    int64_t max_assignments() const { return expert_choice ? experts * capacity : tokens * top_k; }
  };
  struct MoeRouteOut {
    int64_t* offsets = nullptr;   // [E+1]
    int64_t* counts = nullptr;    // [E]
    int64_t* dropped = nullptr;   // [1]
    int32_t* token = nullptr;     // [max_assignments]
    int32_t* expert = nullptr;    // [max_assignments]
    float* weight = nullptr;      // [max_assignments]
    float* probability = nullptr; // [max_assignments] p[token, expert]
    int32_t* topk = nullptr;      // [T·K], token choice only (may be null for expert choice)
    double* topk_sum = nullptr;   // [T],   token choice only
  };
  virtual void moe_route(const MoeRouteOut& out, const float* probs_TE, const float* bias_E,
                         const MoeRouteSpec& spec) = 0;
  // dprobs[T,E] (overwritten) = ∂/∂p of  Σ_a dweight[a]·weight[a]  (routing held fixed; through the
  // renormalisation denominator, which includes top-k picks later dropped, and the scaling)
  //   + aux_coef · L_aux (counts from moe_route)  + dirichlet_coef · dirichlet_dprobs (null = none),
  // accumulated in double in that order and rounded once. `kept` = offsets[E] (the host knows it).
  virtual void moe_route_backward(float* dprobs_TE, const float* dweight_A, const MoeRouteOut& routing, int64_t kept,
                                  const MoeRouteSpec& spec, double aux_coef, const double* dirichlet_dprobs_TE,
                                  double dirichlet_coef) = 0;
  // loss[0] = L_aux = E/A · Σ_e counts[e]·mean_t p[t,e], A = Σ_e counts[e] (0 when T or A is 0).
  virtual void moe_aux_loss(double* loss, const float* probs_TE, const int64_t* counts_E, int64_t T, int64_t E) = 0;
  // lse[t] = log Σ_e exp(x[t,e]) in double (max-subtracted). The one row logsumexp of the engine (the
  // z loss; cross_entropy keeps its fused fp32 form, whose bits this would change).
  virtual void logsumexp_rows(double* lse_T, const float* x_TE, int64_t T, int64_t E) = 0;
  // loss[0] = L_z = mean_t lse[t]² (0 for T = 0).
  virtual void moe_z_loss(double* loss, const double* lse_T, int64_t T) = 0;
  // dlogits[t,e] += coef·2·lse[t]·p[t,e]/T (p = softmax(logits), the gradient of coef·L_z).
  virtual void moe_z_loss_backward(float* dlogits_TE, const float* probs_TE, const double* lse_T, int64_t T,
                                   int64_t E, double coef) = 0;
  // Qwen2-MoE's shared-expert gate, y[t,:] += σ[t]·ys[t,:] with σ = sigmoid_forward(x·w_gᵀ).
  virtual void moe_shared_gate_forward(float* y_TD, const float* ys_TD, const float* sigma_T, int64_t T,
                                       int64_t D) = 0;
  // Its backward: dys[t,:] += σ[t]·dy[t,:]; dz[t] += float(Σ_d dy·ys)·σ(1−σ) (dot in double, z the gate logit).
  virtual void moe_shared_gate_backward(float* dys_TD, float* dz_T, const float* dy_TD, const float* ys_TD,
                                        const float* sigma_T, int64_t T, int64_t D) = 0;
  // Dirichlet-prior shaping loss (model/dirichlet_prior.h) of p[T,E] (converted to double): token t is
  // judged against prior prior_of_domain[domain_T[t]] (domain_T null: every token prior 0), rows of
  // alpha_PE[priors, E] (host); per prior g with T_g tokens, L = Σ_g (T_g/T)·L_g, L_g the per-expert
  // Cramér–von Mises distance of the T_g tokens' p to Beta(α_e, Σα − α_e), priors in increasing g.
  // loss[0] = L; dprobs (null = skipped) is overwritten with ∂L/∂p (double).
  virtual void dirichlet_prior_loss(double* loss, double* dprobs_TE, const float* probs_TE, int64_t T, int64_t E,
                                    const int32_t* domain_T, const int32_t* prior_of_domain, int64_t domains,
                                    const double* alpha_PE, int64_t priors) = 0;
  // Router statistics, out[0] = mean_t H(p_t) (nats), out[1] = mean_t max_e p[t,e], each row divided by
  // its sum first when normalize_rows (sigmoid scores are no distribution); 0 for T = 0.
  virtual void moe_router_stats(double* out, const float* probs_TE, int64_t T, int64_t E, bool normalize_rows) = 0;

  // --- Optimizer (train/ coordinates: train/adamw.h, train/trainer_step.cpp, train/expert_bias.h) ---
  // Returns sqrt(Σ x[i]²) to the host (the step's one readback of the gradients), each x[i] widened to
  // double and the sum kept in double. The summation order is the backend's own but fixed: for a given
  // thread count the result never varies, as the clipping it feeds must not.
  virtual double l2_norm(const float* x, int64_t n) = 0;
  // x[i] = float(double(x[i]) · factor): the 1/grad_accum average times the clip factor, in one pass.
  virtual void scale(float* x, double factor, int64_t n) = 0;
  // One torch.optim.AdamW step over a flat buffer split into ranges [offsets[r], offsets[r+1]), r < ranges
  // (offsets and decay are small host arrays: one entry per parameter tensor). Per element, in double,
  // each stored value rounded to fp32 once:
  //   m ← β1·m + (1−β1)·g ;  v ← β2·v + (1−β2)·g²           (m, v stored as fp32 first)
  //   p ← p·keep − step_size · m / (sqrt(v)/bias_correction2_sqrt + ε)
  // with keep = decay_keep where decay[r] != 0, else 1. The caller computes the step's scalars
  // (train::AdamW: step_size = lr/(1−β1^t), bias_correction2_sqrt = sqrt(1−β2^t), decay_keep = 1−lr·wd).
  struct AdamWScalars {
    double beta1 = 0, beta2 = 0, eps = 0;
    double step_size = 0, bias_correction2_sqrt = 1, decay_keep = 1;
  };
  virtual void adamw_step(float* params, float* exp_avg, float* exp_avg_sq, const float* grads,
                          const int64_t* offsets, const uint8_t* decay, int64_t ranges, const AdamWScalars& s) = 0;
  // Aux-loss-free balancing (train/expert_bias.h): bias[e] = float(double(bias[e]) + rate·sign(Σload − E·load[e]))
  // for e < E. `bias` is backend memory; `load` is host memory: the per-expert token counts are already
  // on the host (the routing counts the trainer logs), and E is a few dozen, so they travel as an
  // argument (a device backend copies E integers with the launch) rather than as another buffer.
  virtual void expert_bias_update(float* bias, const int64_t* load, int64_t E, double rate) = 0;
};

// moe_route's refusal of a non-finite score or selection bias. The one op failure that user data can
// cause (a NaN or infinity in a checkpoint's router weights, or a run that diverged) rather than a bug
// in the caller: the model catches it and reports a one-line Error naming the MoE layer.
class NonFiniteRouterScores : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// kCuda exists in every build so code can name it; it has a registry row only in builds with the cuda
// backend (UPCYCLE_HAVE_CUDA), and make_backend(kCuda) elsewhere throws Error.
enum class BackendKind { kRef, kCpu, kCpuBF16, kCuda };

// The backend registry: one row per compiled backend, in the order `--help` lists them. The CLI's
// `--backend` choices and help, the error for an unknown name and the tests' backend lists all read
// it, so a new backend is offered and checked everywhere by adding its row.
struct BackendInfo {
  BackendKind kind;
  std::string_view name;     // what `--backend` takes
  std::string_view summary;  // one line for --help and docs/engine.md
};
std::span<const BackendInfo> registered_backends();
std::vector<std::string> backend_names();  // registry order
std::unique_ptr<Backend> make_backend(BackendKind kind);
BackendKind backend_kind_from_name(std::string_view name);  // a registered name; throws Error otherwise
// Whether make_backend(kind) can succeed on this machine: a registered backend may still be unusable at
// run time (cuda: compiled in, but no GPU visible). Never throws; the host backends are always available.
bool backend_available(BackendKind kind);

}  // namespace upcycle::backend
