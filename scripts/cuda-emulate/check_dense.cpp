// scripts/cuda-emulate: the kernels of cuda_linear.cu, cuda_norm_rope.cu, cuda_elementwise.cu and
// cuda_loss.cu on the CPU emulator (cuBLASLt emulated from its documented semantics, fake/cublasLt.h)
// against the ref backend. Products of bf16 ops are compared with the ref run on inputs rounded by
// core/dtype.h's f32_to_bf16, so a wrong rounding, layout or transpose is an O(1e-2..1) error; db sums the
// unrounded dy. Each output must be within 1e-5 of its largest reference element; backward ops start
// from random gradients, so the accumulate (+=) rule and the null-pointer skips are checked too. As in
// check_attention_moe_ops.cpp, the CudaBackend is never constructed: the ops are called non-virtually
// on zeroed storage (null stream, no GEMM state yet).
#include <cublasLt.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <tuple>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_gemm_state.h"
#include "backend/ref/ref_kernels.h"
#include "core/dtype.h"

using namespace upcycle::backend;
using V = std::vector<float>;

namespace {
std::mt19937 rng(11);
int failures = 0;
V rnd(size_t n, float s = 1.0f) {
  std::normal_distribution<float> d(0, s);
  V v(n);
  for (auto& x : v) x = d(rng);
  return v;
}
V bf(const V& v) {
  V r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = upcycle::bf16_to_f32(upcycle::f32_to_bf16(v[i]));
  return r;
}
void cmp(const char* what, const V& got, const V& want, double tol = 1e-5) {
  double big = 1e-30, worst = 0;
  size_t at = 0;
  for (float w : want) big = std::max(big, double(std::fabs(w)));
  for (size_t i = 0; i < want.size(); ++i) {
    double e = std::fabs(double(got[i]) - want[i]);
    if (!(e <= worst)) {
      worst = e;
      at = i;
    }
  }
  bool ok = got.size() == want.size() && worst <= tol * big;
  failures += !ok;
  std::printf("  %-44s %s rel err %.3g at %zu (n=%zu)\n", what, ok ? "ok  " : "FAIL", worst / big, at, want.size());
}
}  // namespace

alignas(CudaBackend) unsigned char backend_storage[sizeof(CudaBackend)];

int main() {
  std::memset(backend_storage, 0, sizeof backend_storage);
  CudaBackend& cu = *reinterpret_cast<CudaBackend*>(backend_storage);
  // --- linear, bf16 and fp32, bias / no bias / K = 0 / M = 0 ---
  for (auto [M, K, N] :
       {std::tuple<int64_t, int64_t, int64_t>{5, 7, 3}, {1, 16, 9}, {4, 0, 3}, {0, 4, 3}, {33, 20, 17}}) {
    for (int f32 = 0; f32 < 2; ++f32) {
      for (int with_b = 0; with_b < 2; ++with_b) {
        V x = rnd(M * K), w = rnd(N * K), b = rnd(N), y(M * N, 7.0f), yr(M * N, 7.0f);
        V xr = f32 ? x : bf(x), wr = f32 ? w : bf(w);
        const float* bias = with_b ? b.data() : nullptr;
        if (f32)
          cu.CudaBackend::linear_forward_f32(y.data(), x.data(), w.data(), bias, M, K, N);
        else
          cu.CudaBackend::linear_forward(y.data(), x.data(), w.data(), bias, M, K, N);
        ref::linear_forward(yr.data(), xr.data(), wr.data(), with_b ? b.data() : nullptr, M, K, N);
        char name[128];
        std::snprintf(name, sizeof name, "linear_forward%s M%ld K%ld N%ld b%d", f32 ? "_f32" : "", M, K, N, with_b);
        cmp(name, y, yr);
        for (int mask = 0; mask < 8; ++mask) {
          V dy = rnd(M * N), dx = rnd(M * K), dw = rnd(N * K), db = rnd(N);
          V dxr = dx, dwr = dw, dbr = db, dyr = f32 ? dy : bf(dy);
          float* dx_p = mask & 1 ? dx.data() : nullptr;
          float* dw_p = mask & 2 ? dw.data() : nullptr;
          float* db_p = mask & 4 ? db.data() : nullptr;
          if (f32)
            cu.CudaBackend::linear_backward_f32(dx_p, dw_p, db_p, dy.data(), x.data(), w.data(), M, K, N);
          else
            cu.CudaBackend::linear_backward(dx_p, dw_p, db_p, dy.data(), x.data(), w.data(), M, K, N);
          // db sums the unrounded dy: run the ref twice (products on rounded inputs, db on fp32 dy).
          ref::linear_backward<float>(mask & 1 ? dxr.data() : nullptr, mask & 2 ? dwr.data() : nullptr, nullptr,
                                      dyr.data(), xr.data(), wr.data(), M, K, N);
          ref::linear_backward<float>(nullptr, nullptr, mask & 4 ? dbr.data() : nullptr, dy.data(), x.data(), w.data(),
                                      M, K, N);
          std::snprintf(name, sizeof name, "linear_backward%s M%ld K%ld N%ld mask%d", f32 ? "_f32" : "", M, K, N, mask);
          V got = dx;
          got.insert(got.end(), dw.begin(), dw.end());
          got.insert(got.end(), db.begin(), db.end());
          V want = dxr;
          want.insert(want.end(), dwr.begin(), dwr.end());
          want.insert(want.end(), dbr.begin(), dbr.end());
          cmp(name, got, want);
        }
      }
    }
  }
  // --- grouped linear with empty groups ---
  {
    const int64_t K = 6, N = 5;
    std::vector<int64_t> off = {0, 3, 3, 10, 10, 11};
    const int64_t G = 5, A = off[G];
    V x = rnd(A * K), dy = rnd(A * N);
    std::vector<V> w(G), dw(G), dwr(G);
    std::vector<const float*> wp(G), wrp(G);
    std::vector<float*> dwp(G), dwrp(G);
    std::vector<V> wr(G);
    for (int g = 0; g < G; ++g) {
      w[g] = rnd(N * K);
      wr[g] = bf(w[g]);
      dw[g] = rnd(N * K);
      dwr[g] = dw[g];
      wp[g] = w[g].data();
      wrp[g] = wr[g].data();
      dwp[g] = g == 3 ? nullptr : dw[g].data();
      dwrp[g] = g == 3 ? nullptr : dwr[g].data();
    }
    wp[1] = nullptr;
    wrp[1] = nullptr;  // an empty group's weight is never read
    V y(A * N, 3.0f), yr(A * N, 3.0f);
    cu.CudaBackend::grouped_linear_forward(y.data(), x.data(), wp.data(), off.data(), G, K, N);
    V xr = bf(x), dyr = bf(dy);
    ref::grouped_linear_forward(yr.data(), xr.data(), wrp.data(), off.data(), G, K, N);
    cmp("grouped_linear_forward (empty groups)", y, yr);
    V dx = rnd(A * K), dxr = dx;
    cu.CudaBackend::grouped_linear_backward(dx.data(), dwp.data(), dy.data(), x.data(), wp.data(), off.data(), G, K, N);
    ref::grouped_linear_backward(dxr.data(), dwrp.data(), dyr.data(), xr.data(), wrp.data(), off.data(), G, K, N);
    cmp("grouped_linear_backward dx", dx, dxr);
    for (int g = 0; g < G; ++g) cmp("grouped_linear_backward dw[g]", dw[g], dwr[g]);
  }
  // --- rmsnorm ---
  for (auto [T, D] : {std::pair<int64_t, int64_t>{3, 10}, {2, 300}, {130, 5}}) {
    V x = rnd(T * D), w = rnd(D), y(T * D), r(T), yr(T * D), rr(T);
    cu.CudaBackend::rmsnorm_forward(y.data(), r.data(), x.data(), w.data(), T, D, 1e-6f);
    ref::rmsnorm_forward(yr.data(), rr.data(), x.data(), w.data(), T, D, 1e-6f);
    cmp("rmsnorm_forward y", y, yr);
    cmp("rmsnorm_forward rstd", r, rr);
    V dy = rnd(T * D), dx = rnd(T * D), dw = rnd(D), dxr = dx, dwr = dw;
    cu.CudaBackend::rmsnorm_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), r.data(), T, D);
    ref::rmsnorm_backward(dxr.data(), dwr.data(), dy.data(), x.data(), w.data(), rr.data(), T, D);
    cmp("rmsnorm_backward dx", dx, dxr);
    cmp("rmsnorm_backward dw", dw, dwr);
  }
  // --- rope ---
  for (auto dir : {RopeDirection::kForward, RopeDirection::kInverse}) {
    const int64_t T = 6, seq = 3, H = 2, S = 8;
    V inv(S / 2);
    for (int i = 0; i < S / 2; ++i) inv[i] = std::pow(10000.0f, -2.0f * i / S);
    V x = rnd(T * H * S), xr = x;
    cu.CudaBackend::rope(x.data(), inv.data(), T, seq, H, S, 5, dir);
    ref::rope(xr.data(), inv.data(), T, seq, H, S, 5, dir);
    cmp("rope", x, xr);
  }
  // --- elementwise ---
  {
    const int64_t n = 700;
    V g = rnd(n, 3), u = rnd(n), h(n), hr(n);
    cu.CudaBackend::swiglu_forward(h.data(), g.data(), u.data(), n);
    ref::swiglu_forward(hr.data(), g.data(), u.data(), n);
    cmp("swiglu_forward", h, hr);
    V dh = rnd(n), dg = rnd(n), du = rnd(n), dgr = dg, dur = du;
    cu.CudaBackend::swiglu_backward(dg.data(), du.data(), dh.data(), g.data(), u.data(), n);
    ref::swiglu_backward(dgr.data(), dur.data(), dh.data(), g.data(), u.data(), n);
    cmp("swiglu_backward dg", dg, dgr);
    cmp("swiglu_backward du", du, dur);
    V y = rnd(n), yr = y;
    cu.CudaBackend::axpy(y.data(), g.data(), 0.3f, n);
    ref::axpy(yr.data(), g.data(), 0.3f, n);
    cmp("axpy", y, yr);
    V s(n), sr(n);
    cu.CudaBackend::sigmoid_forward(s.data(), g.data(), n);
    ref::sigmoid_forward(sr.data(), g.data(), n);
    cmp("sigmoid_forward", s, sr);
    V dl = rnd(n), dlr = dl;
    cu.CudaBackend::sigmoid_backward(dl.data(), dh.data(), s.data(), n);
    ref::sigmoid_backward(dlr.data(), dh.data(), s.data(), n);
    cmp("sigmoid_backward", dl, dlr);
    const int64_t T = 5, D = 7, Vv = 9;
    V table = rnd(Vv * D), e(T * D), er(T * D);
    std::vector<int32_t> ids = {3, 0, 8, 3, 1};
    cu.CudaBackend::embedding_forward(e.data(), table.data(), ids.data(), T, D);
    ref::embedding_forward(er.data(), table.data(), ids.data(), T, D);
    cmp("embedding_forward", e, er);
  }
  // --- cross entropy ---
  for (int all_ignored = 0; all_ignored < 2; ++all_ignored) {
    const int64_t T = 6, Vv = 1000;
    V logits = rnd(T * Vv, 4), dl(T * Vv, 9.0f), dlr(T * Vv, 9.0f);
    std::vector<int32_t> t = {5, -100, 999, 0, 17, -1};
    if (all_ignored)
      for (auto& v : t) v = -100;
    const double loss = cu.CudaBackend::cross_entropy(dl.data(), logits.data(), t.data(), T, Vv, 0.7f);
    const double lr = ref::cross_entropy(dlr.data(), logits.data(), t.data(), T, Vv, 0.7f);
    cmp("cross_entropy dlogits", dl, dlr);
    cmp("cross_entropy loss", V{float(loss)}, V{float(lr)});
  }
  {  // a target ≥ V must be reported
    std::vector<int32_t> t = {1, 4};
    V l = rnd(2 * 4), d(2 * 4);
    bool threw = false;
    try {
      cu.CudaBackend::cross_entropy(d.data(), l.data(), t.data(), 2, 4, 1.0f);
    } catch (const std::exception&) {
      threw = true;
    }
    failures += !threw;
    std::printf("  %-44s %s\n", "cross_entropy target >= V throws", threw ? "ok" : "FAIL");
  }
  std::printf("%s: %d failure(s); %ld emulated GEMMs\n", failures ? "FAILED" : "PASSED", failures, cuda_emulate::gemms);
  return failures != 0;
}
