// DeviceSimBackend: a test-only backend that behaves like a device whose memory the host cannot read.
// It computes with a real backend (cpu by default, so its results are bitwise the cpu results) but
// allocates from its own arena, an mmap'd region that is PROT_NONE whenever no op or transfer runs:
// any host read or write of model memory outside upload/download/copy/fill_zero and the ops crashes
// the test (SIGSEGV) instead of silently working as it would on a host backend. host_accessible() is
// false, so model code takes its device paths (staged loading, HostView downloads), and every
// transfer is counted so tests can bound the readbacks of a training step.
// Header-only like the other model test helpers. Non-goals: speed, threads calling it concurrently,
// freeing memory back to the system (freed blocks are reused by exact size).
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <string_view>
#include <vector>

#include "backend/backend.h"

namespace upcycle::test {

struct TransferCounts {
  int64_t uploads = 0, downloads = 0, copies = 0, fills = 0, ops = 0;
  int64_t upload_bytes = 0, download_bytes = 0;
};

class DeviceSimBackend final : public backend::Backend {
 public:
  explicit DeviceSimBackend(std::unique_ptr<backend::Backend> inner, size_t arena_bytes = size_t{1} << 30)
      : inner_(std::move(inner)), capacity_(arena_bytes) {
    void* base = ::mmap(nullptr, capacity_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) throw std::bad_alloc();
    base_ = static_cast<std::byte*>(base);
  }
  ~DeviceSimBackend() override { ::munmap(base_, capacity_); }
  DeviceSimBackend(const DeviceSimBackend&) = delete;
  DeviceSimBackend& operator=(const DeviceSimBackend&) = delete;

  std::string_view name() const override { return "device-sim"; }
  const TransferCounts& counts() const { return counts_; }
  void reset_counts() { counts_ = {}; }
  // True when [ptr, ptr+bytes) lies in the arena: a test can check a pointer is device memory.
  bool owns(const void* ptr) const {
    auto p = static_cast<const std::byte*>(ptr);
    return p >= base_ && p < base_ + used_;
  }

  // --- memory: arena blocks, reachable only through these calls ---
  bool host_accessible() const override { return false; }
  void* allocate(size_t bytes) override {
    const size_t size = (bytes + kAlign - 1) / kAlign * kAlign + kAlign;  // ≥ 1 block, never 0
    void* ptr = nullptr;
    if (auto it = free_.find(size); it != free_.end() && !it->second.empty()) {
      ptr = it->second.back();
      it->second.pop_back();
    } else {
      if (used_ + size > capacity_) throw std::bad_alloc();
      ptr = base_ + used_;
      used_ += size;
    }
    sizes_[ptr] = size;
    Unfenced open(*this);
    std::memset(ptr, 0, size);  // zero-filled, as the contract says
    return ptr;
  }
  void deallocate(void* ptr) noexcept override {
    if (ptr == nullptr) return;
    auto it = sizes_.find(ptr);
    if (it == sizes_.end()) return;
    free_[it->second].push_back(ptr);
    sizes_.erase(it);
  }
  void fill_zero(void* ptr, size_t bytes) override {
    ++counts_.fills;
    Unfenced open(*this);
    std::memset(ptr, 0, bytes);
  }
  void upload(void* dst, const void* host_src, size_t bytes) override {
    ++counts_.uploads, counts_.upload_bytes += int64_t(bytes);
    Unfenced open(*this);
    std::memcpy(dst, host_src, bytes);
  }
  void download(void* host_dst, const void* src, size_t bytes) override {
    ++counts_.downloads, counts_.download_bytes += int64_t(bytes);
    Unfenced open(*this);
    std::memcpy(host_dst, src, bytes);
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    ++counts_.copies;
    Unfenced open(*this);
    std::memmove(dst, src, bytes);
  }
  void synchronize() override {}

  // --- ops: the inner backend's, with the arena opened for the call ---
  void linear_forward(float* y, const float* x, const float* w, const float* b, int64_t M, int64_t K,
                      int64_t N) override {
    run([&](Backend& be) { be.linear_forward(y, x, w, b, M, K, N); });
  }
  void linear_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w, int64_t M,
                       int64_t K, int64_t N) override {
    run([&](Backend& be) { be.linear_backward(dx, dw, db, dy, x, w, M, K, N); });
  }
  void linear_forward_f32(float* y, const float* x, const float* w, const float* b, int64_t M, int64_t K,
                          int64_t N) override {
    run([&](Backend& be) { be.linear_forward_f32(y, x, w, b, M, K, N); });
  }
  void linear_backward_f32(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                           int64_t M, int64_t K, int64_t N) override {
    run([&](Backend& be) { be.linear_backward_f32(dx, dw, db, dy, x, w, M, K, N); });
  }
  void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t T, int64_t D,
                       float eps) override {
    run([&](Backend& be) { be.rmsnorm_forward(y, rstd, x, w, T, D, eps); });
  }
  void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w, const float* rstd,
                        int64_t T, int64_t D) override {
    run([&](Backend& be) { be.rmsnorm_backward(dx, dw, dy, x, w, rstd, T, D); });
  }
  void rope(float* x, const float* inv_freq, int64_t T, int64_t seq_len, int64_t n_heads, int64_t S,
            int64_t position_offset, backend::RopeDirection direction) override {
    run([&](Backend& be) { be.rope(x, inv_freq, T, seq_len, n_heads, S, position_offset, direction); });
  }
  void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                         const backend::AttentionShape& shape) override {
    run([&](Backend& be) { be.attention_forward(out, lse, q, k, v, shape); });
  }
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                          const float* v, const float* out, const float* lse,
                          const backend::AttentionShape& shape) override {
    run([&](Backend& be) { be.attention_backward(dq, dk, dv, dout, q, k, v, out, lse, shape); });
  }
  void attention_decode(float* out, const float* q, const float* k_cache, const float* v_cache, int64_t past,
                        const backend::AttentionShape& shape) override {
    run([&](Backend& be) { be.attention_decode(out, q, k_cache, v_cache, past, shape); });
  }
  void swiglu_forward(float* h, const float* g, const float* u, int64_t n) override {
    run([&](Backend& be) { be.swiglu_forward(h, g, u, n); });
  }
  void swiglu_backward(float* dg, float* du, const float* dh, const float* g, const float* u, int64_t n) override {
    run([&](Backend& be) { be.swiglu_backward(dg, du, dh, g, u, n); });
  }
  void embedding_forward(float* x, const float* table, const int32_t* ids, int64_t T, int64_t D) override {
    run([&](Backend& be) { be.embedding_forward(x, table, ids, T, D); });
  }
  double cross_entropy(float* dlogits, const float* logits, const int32_t* targets, int64_t T, int64_t V,
                       float dloss) override {
    double loss = 0;
    run([&](Backend& be) { loss = be.cross_entropy(dlogits, logits, targets, T, V, dloss); });
    return loss;
  }
  void axpy(float* y, const float* x, float alpha, int64_t n) override {
    run([&](Backend& be) { be.axpy(y, x, alpha, n); });
  }
  void softmax_rows(float* probs, const float* logits, int64_t T, int64_t E) override {
    run([&](Backend& be) { be.softmax_rows(probs, logits, T, E); });
  }
  void softmax_rows_backward(float* dlogits, const float* dprobs, const float* probs, int64_t T, int64_t E) override {
    run([&](Backend& be) { be.softmax_rows_backward(dlogits, dprobs, probs, T, E); });
  }
  void sigmoid_forward(float* scores, const float* logits, int64_t n) override {
    run([&](Backend& be) { be.sigmoid_forward(scores, logits, n); });
  }
  void sigmoid_backward(float* dlogits, const float* dscores, const float* scores, int64_t n) override {
    run([&](Backend& be) { be.sigmoid_backward(dlogits, dscores, scores, n); });
  }
  void gather_rows(float* out, const float* x, const int32_t* rows, int64_t A, int64_t T, int64_t D) override {
    run([&](Backend& be) { be.gather_rows(out, x, rows, A, T, D); });
  }
  void scatter_add_rows(float* y, const float* x, const int32_t* rows, const float* weights, int64_t A, int64_t T,
                        int64_t D) override {
    run([&](Backend& be) { be.scatter_add_rows(y, x, rows, weights, A, T, D); });
  }
  void scatter_add_rows_backward(float* dx, float* dweights, const float* dy, const float* x, const int32_t* rows,
                                 const float* weights, int64_t A, int64_t T, int64_t D) override {
    run([&](Backend& be) { be.scatter_add_rows_backward(dx, dweights, dy, x, rows, weights, A, T, D); });
  }
  void grouped_linear_forward(float* y, const float* x, const float* const* w, const int64_t* offsets, int64_t G,
                              int64_t K, int64_t N) override {
    run([&](Backend& be) { be.grouped_linear_forward(y, x, w, offsets, G, K, N); });
  }
  void grouped_linear_backward(float* dx, float* const* dw, const float* dy, const float* x, const float* const* w,
                               const int64_t* offsets, int64_t G, int64_t K, int64_t N) override {
    run([&](Backend& be) { be.grouped_linear_backward(dx, dw, dy, x, w, offsets, G, K, N); });
  }

  // MoE routing and losses.
  void moe_jitter_forward(float* x_noisy, float* noise, const float* x, int64_t n, uint64_t seed,
                          double jitter) override {
    run([&](Backend& be) { be.moe_jitter_forward(x_noisy, noise, x, n, seed, jitter); });
  }
  void moe_jitter_backward(float* dx, const float* dx_noisy, const float* noise, int64_t n) override {
    run([&](Backend& be) { be.moe_jitter_backward(dx, dx_noisy, noise, n); });
  }
  void moe_route(const MoeRouteOut& out, const float* probs_TE, const float* bias_E,
                 const MoeRouteSpec& spec) override {
    run([&](Backend& be) { be.moe_route(out, probs_TE, bias_E, spec); });
  }
  void moe_route_backward(float* dprobs_TE, const float* dweight_A, const MoeRouteOut& routing, int64_t kept,
                          const MoeRouteSpec& spec, double aux_coef, const double* dirichlet_dprobs_TE,
                          double dirichlet_coef) override {
    run([&](Backend& be) {
      be.moe_route_backward(dprobs_TE, dweight_A, routing, kept, spec, aux_coef, dirichlet_dprobs_TE, dirichlet_coef);
    });
  }
  void moe_aux_loss(double* loss, const float* probs_TE, const int64_t* counts_E, int64_t T, int64_t E) override {
    run([&](Backend& be) { be.moe_aux_loss(loss, probs_TE, counts_E, T, E); });
  }
  void logsumexp_rows(double* lse_T, const float* x_TE, int64_t T, int64_t E) override {
    run([&](Backend& be) { be.logsumexp_rows(lse_T, x_TE, T, E); });
  }
  void moe_z_loss(double* loss, const double* lse_T, int64_t T) override {
    run([&](Backend& be) { be.moe_z_loss(loss, lse_T, T); });
  }
  void moe_z_loss_backward(float* dlogits_TE, const float* probs_TE, const double* lse_T, int64_t T, int64_t E,
                           double coef) override {
    run([&](Backend& be) { be.moe_z_loss_backward(dlogits_TE, probs_TE, lse_T, T, E, coef); });
  }
  void moe_shared_gate_forward(float* y_TD, const float* ys_TD, const float* sigma_T, int64_t T, int64_t D) override {
    run([&](Backend& be) { be.moe_shared_gate_forward(y_TD, ys_TD, sigma_T, T, D); });
  }
  void moe_shared_gate_backward(float* dys_TD, float* dz_T, const float* dy_TD, const float* ys_TD,
                                const float* sigma_T, int64_t T, int64_t D) override {
    run([&](Backend& be) { be.moe_shared_gate_backward(dys_TD, dz_T, dy_TD, ys_TD, sigma_T, T, D); });
  }
  void dirichlet_prior_loss(double* loss, double* dprobs_TE, const float* probs_TE, int64_t T, int64_t E,
                            const int32_t* domain_T, const int32_t* prior_of_domain, int64_t domains,
                            const double* alpha_PE, int64_t priors) override {
    run([&](Backend& be) {
      be.dirichlet_prior_loss(loss, dprobs_TE, probs_TE, T, E, domain_T, prior_of_domain, domains, alpha_PE, priors);
    });
  }
  void moe_router_stats(double* out, const float* probs_TE, int64_t T, int64_t E, bool normalize_rows) override {
    run([&](Backend& be) { be.moe_router_stats(out, probs_TE, T, E, normalize_rows); });
  }
  // Optimizer.
  double l2_norm(const float* x, int64_t n) override {
    double norm = 0;
    run([&](Backend& be) { norm = be.l2_norm(x, n); });
    return norm;
  }
  void scale(float* x, double factor, int64_t n) override {
    run([&](Backend& be) { be.scale(x, factor, n); });
  }
  void adamw_step(float* params, float* exp_avg, float* exp_avg_sq, const float* grads, const int64_t* offsets,
                  const uint8_t* decay, int64_t ranges, const AdamWScalars& s) override {
    run([&](Backend& be) { be.adamw_step(params, exp_avg, exp_avg_sq, grads, offsets, decay, ranges, s); });
  }
  void expert_bias_update(float* bias, const int64_t* load, int64_t E, double rate) override {
    run([&](Backend& be) { be.expert_bias_update(bias, load, E, rate); });
  }

 private:
  static constexpr size_t kAlign = 64;

  // Opens the used part of the arena for one call and closes it again (nesting-safe).
  class Unfenced {
   public:
    explicit Unfenced(DeviceSimBackend& sim) : sim_(sim) {
      if (sim_.open_++ == 0) sim_.protect(PROT_READ | PROT_WRITE);
    }
    ~Unfenced() {
      if (--sim_.open_ == 0) sim_.protect(PROT_NONE);
    }
    Unfenced(const Unfenced&) = delete;
    Unfenced& operator=(const Unfenced&) = delete;

   private:
    DeviceSimBackend& sim_;
  };

  void protect(int prot) {
    const size_t page = size_t(::sysconf(_SC_PAGESIZE));
    const size_t length = (used_ + page - 1) / page * page;
    if (length > 0) ::mprotect(base_, length, prot);
  }
  template <class F>
  void run(F&& f) {
    ++counts_.ops;
    Unfenced open(*this);
    f(*inner_);
  }

  std::unique_ptr<backend::Backend> inner_;
  std::byte* base_ = nullptr;
  size_t capacity_ = 0, used_ = 0;
  int open_ = 0;
  std::map<void*, size_t> sizes_;                 // live blocks
  std::map<size_t, std::vector<void*>> free_;     // freed blocks by size, reused first
  TransferCounts counts_;
};

}  // namespace upcycle::test
