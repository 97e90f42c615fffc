// The op-case table's rows for the MoE routing and router-loss ops (backend.h, "MoE routing and
// losses"): jitter, the routing decision (token choice with and without renormalisation, scaling,
// capacity dropping, selection bias, group-limited sigmoid scores; expert choice) with its backward
// and the aux loss, logsumexp and the z loss, the shared-expert gate, the Dirichlet prior, the router
// statistics. Awkward inputs: heavy ties, empty experts, overflowing capacity, T = 0 and 1, 130 tokens
// over 60 experts. The decision's integer outputs must equal ref's exactly on every backend; the
// floating-point ones follow test::ref_arithmetic_rtol (bitwise on the host backends). Rows of ops
// with a backward also check it against central finite differences of the op's own forward, on every
// backend (the routing held fixed). Hand-computed values of these ops (oracles of ref itself) are in
// moe_loss_ops_test.cpp, moe_routing_ops_test.cpp, moe_routing_test.cpp and moe_sigmoid_routing_test.cpp.
#include <cmath>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/moe_routing.h"
#include "support/backend_test_support.h"
#include "support/finite_differences.h"
#include "support/moe_routing_test_support.h"
#include "support/op_table.h"

namespace upcycle::test {
namespace {

using backend::Backend;
using model::MoeOptions;
using upcycle::TopkNorm;

MoeOptions token_choice(int64_t E, int64_t K, TopkNorm norm, double cf, double scaling = 1.0) {
  return MoeOptions{.num_experts = E, .top_k = K, .topk_norm = norm, .topk_scaling = scaling, .capacity_factor = cf};
}
MoeOptions expert_choice(int64_t E, double cf) {
  return MoeOptions{.num_experts = E, .mode = model::RoutingMode::kExpertChoice, .capacity_factor = cf};
}

struct RouteRow {
  std::string name;
  int64_t T;
  MoeOptions options;
  bool ties = false, bias = false, dirichlet = false;
  bool finite_differences = false;  // also check the backward against finite differences
};

bool sigmoid_scores(const MoeOptions& o) { return o.scoring == RouterScoring::kSigmoid; }
bool has_aux_loss(const MoeOptions& o) { return o.mode == model::RoutingMode::kTokenChoice && !sigmoid_scores(o); }

// moe_route, then moe_route_backward of seeded weight gradients (+ the aux loss's, + a Dirichlet
// gradient term), then moe_aux_loss on the routing's counts: the sequence a layer runs.
void run_route(OpRun& r, const RouteRow& row, uint64_t seed) {
  const Backend::MoeRouteSpec spec = model::route_spec(row.options, row.T);
  const int64_t T = row.T, E = spec.experts, A = spec.max_assignments(), TK = spec.expert_choice ? 0 : T * spec.top_k;
  const float* probs = r.in(router_probs(T, E, seed, row.ties, sigmoid_scores(row.options)));
  const float* bias = row.bias ? r.in(random_floats(size_t(E), seed + 1, 0.1f, "bias")) : nullptr;
  int64_t* index = r.out("index", std::vector<int64_t>(size_t(2 * E + 2), -1));
  const Backend::MoeRouteOut out{.offsets = index,
                                 .counts = index + E + 1,
                                 .dropped = index + 2 * E + 1,
                                 .token = r.out("token", std::vector<int32_t>(size_t(A), -1)),
                                 .expert = r.out("expert", std::vector<int32_t>(size_t(A), -1)),
                                 .weight = r.out("weight", std::vector<float>(size_t(A), -1.0f)),
                                 .probability = r.out("probability", std::vector<float>(size_t(A), -1.0f)),
                                 .topk = r.out("topk", std::vector<int32_t>(size_t(TK), -1)),
                                 .topk_sum = r.out("topk_sum", std::vector<double>(size_t(TK ? T : 0), -1.0))};
  r.be().moe_route(out, probs, bias, spec);

  const int64_t kept = r.fetch(index, E + 1)[size_t(E)];  // the layer's one index download
  const float* dweight = r.in(random_floats(size_t(A), seed + 2));
  const double aux_coef = has_aux_loss(row.options) ? 0.3 : 0.0;
  const double* dirichlet = nullptr;
  if (row.dirichlet) {  // a Dirichlet gradient term: any values, the op only scales and adds them
    std::vector<double> d(size_t(T * E));
    for (size_t i = 0; i < d.size(); ++i) d[i] = 0.25 * double(i % 9) - 1.0;
    dirichlet = r.in(d);
  }
  float* dprobs = r.out("dprobs", random_floats(size_t(T * E), seed + 3));  // overwritten
  r.be().moe_route_backward(dprobs, dweight, out, kept, spec, aux_coef, dirichlet, row.dirichlet ? 0.5 : 0.0);
  if (has_aux_loss(row.options)) {
    double* loss = r.out("aux_loss", std::vector<double>{-1.0});
    r.be().moe_aux_loss(loss, probs, out.counts, T, E);
  }
}

// ∂/∂p of Σ_a g_a·w_a(p) + aux_coef·L_aux(p), the routing of p held fixed, against central differences
// of the backend's own moe_route weights and moe_aux_loss (moe_routing_test_support.h's host wrappers).
void check_route_gradient(Backend& be, const RouteRow& row, uint64_t seed) {
  const int64_t T = row.T, E = row.options.num_experts;
  std::vector<float> p = router_probs(T, E, seed, row.ties, sigmoid_scores(row.options));
  const double aux_coef = has_aux_loss(row.options) ? 0.3 : 0.0;
  const Routing fixed = route(be, p.data(), T, row.options);
  const std::vector<float> g = random_floats(size_t(fixed.kept()), seed + 2, 1.0f, "dweight");
  const std::vector<float> grad = route_backward(be, fixed, g, row.options, aux_coef);
  auto objective = [&] {
    const Routing now = route(be, p.data(), T, row.options);
    EXPECT_EQ(now.token, fixed.token);  // the step must not change the decision
    EXPECT_EQ(now.expert, fixed.expert);
    double sum = 0.0;
    for (size_t a = 0; a < now.weight.size(); ++a) sum += double(g[a]) * now.weight[a];
    return sum + aux_coef * aux_loss(be, p.data(), T, E, fixed.counts_E);
  };
  EXPECT_TRUE(matches_finite_differences(p, grad, objective, 1.0f / 1024, 2e-3));
}

void add_route_rows(std::vector<OpCase>& cases) {
  MoeOptions grouped = token_choice(8, 3, TopkNorm::kRenormalize, 0.0, 2.5);
  grouped.scoring = RouterScoring::kSigmoid, grouped.n_group = 4, grouped.topk_group = 2;
  const std::vector<RouteRow> rows = {
      {"T37_E8_K2_dropless", 37, token_choice(8, 2, TopkNorm::kRenormalize, 0.0)},
      {"T29_E5_K2_ties", 29, token_choice(5, 2, TopkNorm::kRenormalize, 0.0), true},
      {"T41_E6_K2_capacity_overflow", 41, token_choice(6, 2, TopkNorm::kRenormalize, 0.5), true},
      {"T23_E4_K1_raw_scaled_capacity", 23, token_choice(4, 1, TopkNorm::kNone, 0.75, 2.0)},
      {"T1_E7_K3", 1, token_choice(7, 3, TopkNorm::kRenormalize, 1.0)},
      {"T0_E4_K2", 0, token_choice(4, 2, TopkNorm::kRenormalize, 1.0)},
      {"T19_E6_K2_bias_dirichlet", 19, token_choice(6, 2, TopkNorm::kRenormalize, 0.0), false, true, true},
      {"T17_E8_K3_sigmoid_groups_bias", 17, grouped, true, true},
      {"T21_E6_expert_choice", 21, expert_choice(6, 1.5), true},
      {"T130_E60_K4_capacity", 130, token_choice(60, 4, TopkNorm::kRenormalize, 1.25), true},
      {"T130_E7_expert_choice", 130, expert_choice(7, 2.0)},
      // Rows whose backward is also checked against finite differences (T = 9, E = 5).
      {"T9_E5_K2_renorm_capacity_scaled", 9, token_choice(5, 2, TopkNorm::kRenormalize, 0.6, 1.5), false, false,
       false, true},
      {"T9_E5_K2_raw_scaled", 9, token_choice(5, 2, TopkNorm::kNone, 0.0, 2.5), false, false, false, true},
      {"T9_E5_expert_choice", 9, expert_choice(5, 1.0), false, false, false, true},
  };
  uint64_t seed = 2000;
  for (const RouteRow& row : rows) {
    const uint64_t s = seed += 10;
    OpCase c{"moe_route_" + row.name, OpClass::kRefArithmetic, [=](OpRun& r) { run_route(r, row, s); }};
    if (row.finite_differences) c.gradient_check = [=](Backend& be) { check_route_gradient(be, row, s); };
    cases.push_back(std::move(c));
  }
}

void add_jitter_rows(std::vector<OpCase>& cases) {
  for (int64_t n : {int64_t{1}, int64_t{1031}}) {
    const double j = 0.2;
    const uint64_t noise_seed = 77;
    auto forward = [=](OpRun& r, const std::vector<float>& x) {
      float* xn = r.out("x_noisy", std::vector<float>(size_t(n), 5.0f));
      float* noise = r.out("noise", std::vector<float>(size_t(n), 5.0f));
      r.be().moe_jitter_forward(xn, noise, r.in(x), n, noise_seed, j);
      return noise;
    };
    cases.push_back({"moe_jitter_n" + std::to_string(n), OpClass::kRefArithmetic,
                     [=](OpRun& r) {
                       const float* noise = forward(r, random_floats(size_t(n), 2100));
                       float* dx = r.out("dx", random_floats(size_t(n), 2101));
                       r.be().moe_jitter_backward(dx, r.in(random_floats(size_t(n), 2102)), noise, n);
                     },
                     [=](Backend& be) {  // Σ r ⊙ x_noisy(x): affine in x
                       std::vector<float> x = random_floats(size_t(n), 2100);
                       const std::vector<float> w = random_floats(size_t(n), 2102);
                       OpRun g(be);
                       const float* noise = forward(g, x);
                       float* dx = g.out("dx", std::vector<float>(size_t(n), 0.0f));
                       be.moe_jitter_backward(dx, g.in(w), noise, n);
                       const std::vector<double> grad_d = g.output("dx");
                       const std::vector<float> grad(grad_d.begin(), grad_d.end());
                       auto objective = [&] {
                         OpRun f(be);
                         forward(f, x);
                         const std::vector<double> y = f.output("x_noisy");
                         double sum = 0.0;
                         for (size_t i = 0; i < y.size(); ++i) sum += double(w[i]) * y[i];
                         return sum;
                       };
                       EXPECT_TRUE(matches_finite_differences(x, grad, objective, 1.0f / 64, 1e-4));
                     }});
  }
}

std::vector<float> ref_softmax(const std::vector<float>& logits, int64_t T, int64_t E) {
  std::vector<float> p(logits.size());
  backend::make_backend(backend::BackendKind::kRef)->softmax_rows(p.data(), logits.data(), T, E);
  return p;
}

// logsumexp_rows → moe_z_loss, and moe_z_loss_backward with p = softmax(logits): the layer's z loss.
void add_z_loss_rows(std::vector<OpCase>& cases) {
  struct Shape { int64_t T, E; float scale; };
  for (Shape d : {Shape{13, 7, 2.0f}, Shape{5, 130, 300.0f}, Shape{0, 4, 1.0f}}) {  // 300: exp overflows a naive sum
    const double coef = 0.7;
    auto forward = [=](OpRun& r, const std::vector<float>& logits_host, bool with_probs) {
      const float* logits = r.in(logits_host);
      double* lse = r.out("lse", std::vector<double>(size_t(d.T), -1.0));
      r.be().logsumexp_rows(lse, logits, d.T, d.E);
      double* loss = r.out("z_loss", std::vector<double>{-1.0});
      r.be().moe_z_loss(loss, lse, d.T);
      // p = softmax(logits) as an input, from ref: softmax_rows is an fp32 op with its own tolerance.
      const float* p = with_probs ? r.in(ref_softmax(logits_host, d.T, d.E)) : nullptr;
      return std::pair<const float*, const double*>(p, lse);
    };
    const std::string shape = dims({{"T", d.T}, {"E", d.E}});
    cases.push_back({"logsumexp_rows" + shape, OpClass::kRefArithmetic, [=](OpRun& r) {
                       forward(r, random_floats(size_t(d.T * d.E), 2200, d.scale), false);
                     }});
    OpCase z{"moe_z_loss" + shape, OpClass::kRefArithmetic, [=](OpRun& r) {
               const auto [p, lse] = forward(r, random_floats(size_t(d.T * d.E), 2200, d.scale), true);
               float* dlogits = r.out("dlogits", random_floats(size_t(d.T * d.E), 2201));  // accumulates
               r.be().moe_z_loss_backward(dlogits, p, lse, d.T, d.E, coef);
             }};
    if (d.T > 0 && d.scale < 10)
      z.gradient_check = [=](Backend& be) {
        std::vector<float> logits = random_floats(size_t(d.T * d.E), 2200, d.scale);
        OpRun g(be);
        const auto [p, lse] = forward(g, logits, true);
        float* dlogits = g.out("dlogits", std::vector<float>(size_t(d.T * d.E), 0.0f));
        be.moe_z_loss_backward(dlogits, p, lse, d.T, d.E, coef);
        const std::vector<double> grad_d = g.output("dlogits");
        const std::vector<float> grad(grad_d.begin(), grad_d.end());
        auto objective = [&] {
          OpRun f(be);
          forward(f, logits, false);
          return coef * f.output("z_loss")[0];
        };
        EXPECT_TRUE(matches_finite_differences(logits, grad, objective, 1.0f / 1024, 1e-4));
      };
    cases.push_back(std::move(z));
  }
}

void add_aux_loss_rows(std::vector<OpCase>& cases) {
  struct Row { int64_t T; std::vector<int64_t> counts; };
  for (const Row& row : {Row{64, {30, 0, 41, 7, 19, 31}}, Row{3, {1, 2, 0, 3, 0, 0, 0}}, Row{0, {0, 0, 0}}}) {
    const auto E = int64_t(row.counts.size());
    cases.push_back({"moe_aux_loss" + dims({{"T", row.T}, {"E", E}}), OpClass::kRefArithmetic, [=](OpRun& r) {
                       const float* p = r.in(router_probs(row.T, E, 2300, false));
                       double* loss = r.out("aux_loss", std::vector<double>{-1.0});
                       r.be().moe_aux_loss(loss, p, r.in(row.counts), row.T, E);
                     }});
  }
}

// y += σ·ys with σ = sigmoid(z), and its backward: Qwen2-MoE's shared-expert gate.
void add_shared_gate_rows(std::vector<OpCase>& cases) {
  struct Shape { int64_t T, D; };
  for (Shape d : {Shape{4, 67}, Shape{13, 130}, Shape{1, 1}}) {  // 67, 130: across the cpu's 64-column blocks
    const size_t TD = size_t(d.T * d.D);
    auto forward = [=](OpRun& r, const std::vector<float>& z, const std::vector<float>& ys_host,
                       const std::vector<float>& y0) {
      float* sigma = r.out("sigma", std::vector<float>(size_t(d.T)));
      r.be().sigmoid_forward(sigma, r.in(z), d.T);
      const float* ys = r.in(ys_host);
      r.be().moe_shared_gate_forward(r.out("y", y0), ys, sigma, d.T, d.D);
      return std::pair<const float*, const float*>(sigma, ys);
    };
    auto backward = [=](OpRun& r, const float* sigma, const float* ys, const std::vector<float>& dy,
                        const std::vector<float>& dys0, const std::vector<float>& dz0) {
      r.be().moe_shared_gate_backward(r.out("dys", dys0), r.out("dz", dz0), r.in(dy), ys, sigma, d.T, d.D);
    };
    const std::vector<float> z = random_floats(size_t(d.T), 2400, 2.0f), ys = random_floats(TD, 2401);
    const std::vector<float> dy = random_floats(TD, 2402);
    cases.push_back({"moe_shared_gate" + dims({{"T", d.T}, {"D", d.D}}), OpClass::kRefArithmetic,
                     [=](OpRun& r) {
                       const auto [sigma, ys_d] = forward(r, z, ys, random_floats(TD, 2403));  // y accumulates
                       backward(r, sigma, ys_d, dy, random_floats(TD, 2404), random_floats(size_t(d.T), 2405));
                     },
                     [=](Backend& be) {  // Σ dy ⊙ y(z, ys)
                       std::vector<float> z_fd = z, ys_fd = ys;
                       OpRun g(be);
                       const auto [sigma, ys_d] = forward(g, z, ys, std::vector<float>(TD, 0.0f));
                       backward(g, sigma, ys_d, dy, std::vector<float>(TD, 0.0f), std::vector<float>(size_t(d.T), 0.0f));
                       const std::vector<double> dz_d = g.output("dz"), dys_d = g.output("dys");
                       const std::vector<float> dz(dz_d.begin(), dz_d.end()), dys(dys_d.begin(), dys_d.end());
                       auto objective = [&] {
                         OpRun f(be);
                         forward(f, z_fd, ys_fd, std::vector<float>(TD, 0.0f));
                         const std::vector<double> y = f.output("y");
                         double sum = 0.0;
                         for (size_t i = 0; i < y.size(); ++i) sum += double(dy[i]) * y[i];
                         return sum;
                       };
                       EXPECT_TRUE(matches_finite_differences(z_fd, dz, objective, 1.0f / 1024, 1e-3));
                       EXPECT_TRUE(matches_finite_differences(ys_fd, dys, objective, 1.0f / 64, 1e-4));
                     }});
  }
}

// One prior for every token, and per-domain priors (three domains, 0 and 2 sharing α: two priors).
void add_dirichlet_rows(std::vector<OpCase>& cases) {
  const int64_t E = 4;
  const std::vector<double> alpha_PE = {0.5, 0.5, 0.5, 0.5, 3, 1, 1, 0.7};
  const std::vector<int32_t> prior_of_domain = {0, 1, 0};
  for (int64_t T : {int64_t{23}, int64_t{1}}) {
    for (bool per_domain : {false, true}) {
      cases.push_back({"dirichlet_prior_loss" + dims({{"T", T}, {"E", E}}) + (per_domain ? "_per_domain" : "_one_prior"),
                       OpClass::kRefArithmetic, [=](OpRun& r) {
                         std::vector<int32_t> domain_T(static_cast<size_t>(T));
                         for (int64_t t = 0; t < T; ++t) domain_T[size_t(t)] = int32_t((t * 7) % 3);
                         const float* p = r.in(router_probs(T, E, 2500, false));
                         double* loss = r.out("loss", std::vector<double>{-1.0});
                         double* dprobs = r.out("dprobs", std::vector<double>(size_t(T * E), 9.0));  // overwritten
                         if (per_domain)
                           r.be().dirichlet_prior_loss(loss, dprobs, p, T, E, r.in(domain_T), prior_of_domain.data(),
                                                       3, alpha_PE.data(), 2);
                         else
                           r.be().dirichlet_prior_loss(loss, dprobs, p, T, E, nullptr, nullptr, 0, alpha_PE.data(), 1);
                       }});
    }
  }
}

void add_router_stats_rows(std::vector<OpCase>& cases) {
  struct Row { int64_t T, E; bool sigmoid; };
  for (Row row : {Row{50, 6, false}, Row{17, 8, true}, Row{1, 130, false}, Row{0, 3, false}}) {
    cases.push_back({"moe_router_stats" + dims({{"T", row.T}, {"E", row.E}}) + (row.sigmoid ? "_sigmoid" : ""),
                     OpClass::kRefArithmetic, [=](OpRun& r) {
                       const float* p = r.in(router_probs(row.T, row.E, 2600, false, row.sigmoid));
                       double* stats = r.out("entropy_top1", std::vector<double>{-1.0, -1.0});
                       r.be().moe_router_stats(stats, p, row.T, row.E, row.sigmoid);
                     }});
  }
}

}  // namespace

void add_moe_routing_cases(std::vector<OpCase>& cases) {
  add_jitter_rows(cases);
  add_route_rows(cases);
  add_aux_loss_rows(cases);
  add_z_loss_rows(cases);
  add_shared_gate_rows(cases);
  add_dirichlet_rows(cases);
  add_router_stats_rows(cases);
}

}  // namespace upcycle::test
