// scripts/cuda-emulate: the kernels of cuda_moe_routing.cu and cuda_optimizer.cu on the CPU emulator
// against the ref backend. Those files promise the ref's bits for the routing (integers, weights, top-k
// sums), its backward, jitter, the serially summed losses and the optimizer steps: these are compared
// bit for bit; logsumexp (libm vs CUDA's exp/log), the router statistics (a tree sum) and l2_norm (a
// fixed two-pass order) within a few ulps. Sizes cover capacity cuts, ties, expert groups, sigmoid
// scores, expert choice, T = 0, non-finite scores and bias (the ref's error, raised after the routing
// kernels, which must then stay in bounds: run with CUDA_EMULATE_CXXFLAGS=-fsanitize=address), and more
// than one launch table (adamw_step's 256 ranges, expert_bias_update's 1024 experts). As in
// check_attention_moe_ops.cpp the CudaBackend is never constructed; download and upload, which the
// harness's cuda_backend.cu defines with CUDA calls, are host copies here.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_routing_state.h"
#include "backend/ref/ref_backend.h"
#include "backend/ref/ref_kernels.h"
#include "backend/ref/ref_moe_routing.h"

using namespace upcycle::backend;
using V = std::vector<float>;

void CudaBackend::upload(void* dst, const void* src, size_t bytes) {
  std::memcpy(dst, src, bytes);
}
void CudaBackend::download(void* dst, const void* src, size_t bytes) {
  std::memcpy(dst, src, bytes);
}

namespace {
std::mt19937 rng(5);
int failures = 0;
template <typename T>
void same(const std::string& what, const T* got, const T* want, size_t n) {
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < n; ++i)
    if (std::memcmp(&got[i], &want[i], sizeof(T)) != 0) {
      if (!bad) first = i;
      ++bad;
    }
  failures += bad != 0;
  std::printf("  %-60s %s", what.c_str(), bad ? "FAIL" : "ok  ");
  if (bad)
    std::printf(" %zu of %zu differ, first at %zu: %.17g vs %.17g", bad, n, first, double(got[first]),
                double(want[first]));
  std::printf("\n");
}
template <typename T>
void same(const std::string& w, const std::vector<T>& g, const std::vector<T>& r) {
  same(w, g.data(), r.data(), std::min(g.size(), r.size()));
}

struct Routed {
  std::vector<int64_t> offsets, counts, dropped;
  std::vector<int32_t> token, expert, topk;
  std::vector<float> weight, prob;
  std::vector<double> topk_sum;
  Backend::MoeRouteOut out;
  Routed(const Backend::MoeRouteSpec& s)
      : offsets(s.experts + 1, -5),
        counts(s.experts, -5),
        dropped(1, -5),
        token(s.max_assignments() + 1, -5),
        expert(s.max_assignments() + 1, -5),
        topk(s.tokens * s.top_k + 1, -5),
        weight(s.max_assignments() + 1, -5),
        prob(s.max_assignments() + 1, -5),
        topk_sum(s.tokens + 1, -5) {
    out = {offsets.data(),
           counts.data(),
           dropped.data(),
           token.data(),
           expert.data(),
           weight.data(),
           prob.data(),
           s.expert_choice ? nullptr : topk.data(),
           s.expert_choice ? nullptr : topk_sum.data()};
  }
};
}  // namespace

alignas(CudaBackend) unsigned char backend_storage[sizeof(CudaBackend)];

int main() {
  std::memset(backend_storage, 0, sizeof backend_storage);
  CudaBackend& cu = *reinterpret_cast<CudaBackend*>(backend_storage);
  RefBackend rf;
  {  // jitter
    const int64_t n = 1000;
    V x(n), xn(n), no(n), xnr(n), nor(n);
    std::normal_distribution<float> d;
    for (auto& v : x) v = d(rng);
    cu.CudaBackend::moe_jitter_forward(xn.data(), no.data(), x.data(), n, 1234, 0.01);
    ref::moe_jitter_forward(xnr.data(), nor.data(), x.data(), n, 1234, 0.01);
    same("jitter noise", no, nor);
    same("jitter x_noisy", xn, xnr);
    V dx(n, 0.5f), dxr(n, 0.5f);
    cu.CudaBackend::moe_jitter_backward(dx.data(), x.data(), no.data(), n);
    ref::moe_jitter_backward(dxr.data(), x.data(), nor.data(), n);
    same("jitter backward", dx, dxr);
  }
  struct Case {
    int64_t T, E, K;
    bool ec;
    int64_t cap;
    bool renorm, sig, bias;
    double scaling;
    int64_t G, TG;
  };
  std::vector<Case> cases = {
      {20, 8, 2, false, 40, true, false, false, 1.0, 1, 1}, {20, 8, 2, false, 3, true, false, false, 1.0, 1, 1},
      {33, 16, 4, false, 5, true, true, true, 2.5, 4, 2},   {33, 16, 3, false, 33 * 3, false, true, true, 1.5, 4, 3},
      {17, 6, 1, false, 0, true, false, false, 1.0, 1, 1},  {0, 4, 2, false, 0, true, false, false, 1.0, 1, 1},
      {25, 8, 0, true, 6, true, false, false, 1.0, 1, 1},   {25, 8, 0, true, 0, true, false, false, 1.0, 1, 1},
      {9, 4, 0, true, 9, true, false, true, 1.0, 1, 1},     {40, 64, 6, false, 4, true, true, true, 2.5, 8, 4}};
  for (const Case& c : cases) {
    Backend::MoeRouteSpec s;
    s.tokens = c.T;
    s.experts = c.E;
    s.top_k = c.K;
    s.expert_choice = c.ec;
    s.capacity = c.cap;
    s.renormalize = c.renorm;
    s.sigmoid_scores = c.sig;
    s.scaling = c.scaling;
    s.n_group = c.G;
    s.topk_group = c.TG;
    V p(c.T * c.E), bias(c.E);
    std::uniform_real_distribution<float> u(0, 1);
    for (auto& v : p) v = u(rng) < 0.25f ? 0.125f : u(rng);  // ties
    for (auto& v : bias) v = (u(rng) - 0.5f) * 0.2f;
    Routed a(s), b(s);
    cu.CudaBackend::moe_route(a.out, p.data(), c.bias ? bias.data() : nullptr, s);
    ref::moe_route(b.out, p.data(), c.bias ? bias.data() : nullptr, s);
    const std::string tag = "route T" + std::to_string(c.T) + " E" + std::to_string(c.E) + " K" + std::to_string(c.K) +
                            (c.ec ? " ec" : " tc") + " cap" + std::to_string(c.cap) + " G" + std::to_string(c.G) + ": ";
    same(tag + "offsets", a.offsets, b.offsets);
    same(tag + "counts", a.counts, b.counts);
    same(tag + "dropped", a.dropped, b.dropped);
    const size_t A = size_t(b.offsets[c.E]);
    same(tag + "token", a.token.data(), b.token.data(), A);
    same(tag + "expert", a.expert.data(), b.expert.data(), A);
    same(tag + "weight", a.weight.data(), b.weight.data(), A);
    same(tag + "probability", a.prob.data(), b.prob.data(), A);
    if (!c.ec) {
      same(tag + "topk", a.topk.data(), b.topk.data(), size_t(c.T * c.K));
      same(tag + "topk_sum", a.topk_sum.data(), b.topk_sum.data(), size_t(c.T));
    }
    // backward with aux and a Dirichlet gradient
    V dwt(A + 1);
    for (auto& v : dwt) v = u(rng) - 0.5f;
    std::vector<double> dd(c.T * c.E);
    for (auto& v : dd) v = u(rng);
    for (int variant = 0; variant < 2; ++variant) {
      V g(c.T * c.E, 9.0f), gr(c.T * c.E, 9.0f);
      cu.CudaBackend::moe_route_backward(g.data(), dwt.data(), a.out, int64_t(A), s, variant ? 0.01 : 0.0,
                                         variant ? dd.data() : nullptr, 0.3);
      ref::moe_route_backward(gr.data(), dwt.data(), b.out, int64_t(A), s, variant ? 0.01 : 0.0,
                              variant ? dd.data() : nullptr, 0.3);
      same(tag + "backward" + (variant ? " +aux +dirichlet" : ""), g, gr);
    }
    double l1 = -1, l2 = -2;
    cu.CudaBackend::moe_aux_loss(&l1, p.data(), a.counts.data(), c.T, c.E);
    ref::moe_aux_loss(&l2, p.data(), b.counts.data(), c.T, c.E);
    same(tag + "aux loss", &l1, &l2, 1);
  }
  {  // non-finite scores or bias: the ref's error, raised after kernels that must stay in bounds (run under
     // -fsanitize=address to check that part)
    Backend::MoeRouteSpec s;
    s.tokens = 9;
    s.experts = 8;
    s.top_k = 2;
    s.capacity = 3;
    s.n_group = 4;
    s.topk_group = 2;
    for (int bad = 0; bad < 3; ++bad) {
      V p(s.tokens * s.experts, 0.25f), bias(s.experts, 0.0f);
      if (bad == 0) p[13] = std::nanf("");
      if (bad == 1) p[40] = INFINITY;
      if (bad == 2) bias[5] = std::nanf("");
      for (int ec = 0; ec < 2; ++ec) {
        s.expert_choice = ec;
        Routed a(s), b(s);
        std::string got = "no error", want = "no error";
        try {
          cu.CudaBackend::moe_route(a.out, p.data(), bias.data(), s);
        } catch (const std::exception& e) {
          got = e.what();
        }
        try {
          ref::moe_route(b.out, p.data(), bias.data(), s);
        } catch (const std::exception& e) {
          want = e.what();
        }
        const bool ok = got == want;
        failures += !ok;
        std::printf("  %-60s %s (%s)\n", ("non-finite input " + std::to_string(bad) + (ec ? " ec" : " tc")).c_str(),
                    ok ? "ok  " : "FAIL", got.c_str());
      }
    }
  }
  {  // losses and stats
    const int64_t T = 37, E = 12, D = 10;
    V x(T * E), p(T * E);
    std::normal_distribution<float> d;
    for (auto& v : x) v = 3 * d(rng);
    ref::softmax_rows(p.data(), x.data(), T, E);
    std::vector<double> lse(T), lser(T);
    cu.CudaBackend::logsumexp_rows(lse.data(), x.data(), T, E);
    ref::logsumexp_rows(lser.data(), x.data(), T, E);
    double worst = 0;
    for (int t = 0; t < T; ++t) worst = std::max(worst, std::fabs(lse[t] - lser[t]) / std::fabs(lser[t]));
    failures += worst > 1e-14;
    std::printf("  %-60s %s rel %.3g\n", "logsumexp_rows (last-ulp libm differences allowed)",
                worst > 1e-14 ? "FAIL" : "ok  ", worst);
    double z = -1, zr = -2;
    cu.CudaBackend::moe_z_loss(&z, lser.data(), T);
    ref::moe_z_loss(&zr, lser.data(), T);
    same("z loss", &z, &zr, 1);
    V dl(T * E, 0.25f), dlr(T * E, 0.25f);
    cu.CudaBackend::moe_z_loss_backward(dl.data(), p.data(), lser.data(), T, E, 0.001);
    ref::moe_z_loss_backward(dlr.data(), p.data(), lser.data(), T, E, 0.001);
    same("z loss backward", dl, dlr);
    V ys(T * D), sg(T), y(T * D, 1.0f), yr(T * D, 1.0f), dy(T * D);
    for (auto& v : ys) v = d(rng);
    for (auto& v : dy) v = d(rng);
    for (auto& v : sg) v = 1 / (1 + std::exp(-d(rng)));
    cu.CudaBackend::moe_shared_gate_forward(y.data(), ys.data(), sg.data(), T, D);
    ref::moe_shared_gate_forward(yr.data(), ys.data(), sg.data(), T, D);
    same("shared gate forward", y, yr);
    V dys(T * D, 0.5f), dysr(T * D, 0.5f), dz(T, 0.5f), dzr(T, 0.5f);
    cu.CudaBackend::moe_shared_gate_backward(dys.data(), dz.data(), dy.data(), ys.data(), sg.data(), T, D);
    ref::moe_shared_gate_backward(dysr.data(), dzr.data(), dy.data(), ys.data(), sg.data(), T, D);
    same("shared gate dys", dys, dysr);
    same("shared gate dz", dz, dzr);
    for (int norm = 0; norm < 2; ++norm) {
      double st[2], str[2];
      cu.CudaBackend::moe_router_stats(st, p.data(), T, E, norm);
      ref::moe_router_stats(str, p.data(), T, E, norm);
      const double e0 = std::fabs(st[0] - str[0]) / str[0], e1 = std::fabs(st[1] - str[1]) / str[1];
      failures += e0 > 1e-13 || e1 > 1e-13;
      std::printf("  %-60s %s rel %.3g %.3g\n", "router stats (tree sum)", e0 > 1e-13 || e1 > 1e-13 ? "FAIL" : "ok  ",
                  e0, e1);
    }
    double zero[2] = {7, 7};
    cu.CudaBackend::moe_router_stats(zero, p.data(), 0, E, false);
    failures += zero[0] != 0 || zero[1] != 0;
    std::printf("  router stats T=0 %s\n", zero[0] == 0 && zero[1] == 0 ? "ok" : "FAIL");
  }
  {  // optimizer
    const int64_t n = 5000;
    V g(n);
    std::normal_distribution<float> d;
    for (auto& v : g) v = d(rng);
    const double nc = cu.CudaBackend::l2_norm(g.data(), n), nr = rf.l2_norm(g.data(), n);
    failures += std::fabs(nc - nr) > 1e-13 * nr;
    std::printf("  %-60s %s %.17g vs %.17g\n", "l2_norm", std::fabs(nc - nr) > 1e-13 * nr ? "FAIL" : "ok  ", nc, nr);
    V x = g, xr = g;
    cu.CudaBackend::scale(x.data(), 0.37, n);
    rf.scale(xr.data(), 0.37, n);
    same("scale", x, xr);
    // 600 ranges (three launch tables), some empty, mixed decay
    std::vector<int64_t> off = {0};
    std::vector<uint8_t> dec;
    std::uniform_int_distribution<int> len(0, 12);
    for (int r = 0; r < 600; ++r) {
      off.push_back(off.back() + (r % 7 == 3 ? 0 : len(rng)));
      dec.push_back(uint8_t(r % 3 != 0));
    }
    const int64_t N = off.back();
    V pa(N), m(N), v(N), gr(N);
    for (int64_t i = 0; i < N; ++i) {
      pa[i] = d(rng);
      m[i] = 0.1f * d(rng);
      v[i] = std::fabs(0.01f * d(rng));
      gr[i] = d(rng);
    }
    V pa2 = pa, m2 = m, v2 = v;
    Backend::AdamWScalars s;
    s.beta1 = 0.9;
    s.beta2 = 0.95;
    s.eps = 1e-8;
    s.step_size = 1e-3 / (1 - 0.9 * 0.9);
    s.bias_correction2_sqrt = std::sqrt(1 - 0.95 * 0.95);
    s.decay_keep = 1 - 1e-3 * 0.1;
    cu.CudaBackend::adamw_step(pa.data(), m.data(), v.data(), gr.data(), off.data(), dec.data(), 600, s);
    rf.adamw_step(pa2.data(), m2.data(), v2.data(), gr.data(), off.data(), dec.data(), 600, s);
    same("adamw params", pa, pa2);
    same("adamw exp_avg", m, m2);
    same("adamw exp_avg_sq", v, v2);
    const int64_t E = 1500;
    V b(E), b2(E);
    std::vector<int64_t> load(E);
    for (int e = 0; e < E; ++e) {
      b[e] = b2[e] = d(rng);
      load[e] = e % 5;
    }
    cu.CudaBackend::expert_bias_update(b.data(), load.data(), E, 1e-3);
    rf.expert_bias_update(b2.data(), load.data(), E, 1e-3);
    same("expert_bias_update (1500 experts)", b, b2);
  }
  std::printf("%s: %d failure(s)\n", failures ? "FAILED" : "PASSED", failures);
  return failures != 0;
}
