// Reference kernels of the dense ops in backend.h, templated on the storage scalar (ref_kernels.h):
// direct transcriptions of the formulas, with every sum in double. Invariants: forward ops overwrite,
// backward ops accumulate (+=), exactly as the contract says; each value is rounded to Real once,
// when stored. Instantiated for float (RefBackend) and double (finite-difference tests) at the end.
// Non-goal: speed.
#include "backend/ref/ref_kernels.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/op_checks.h"

namespace upcycle::backend::ref {

template <typename Real>
void linear_forward(Real* y, const Real* x, const Real* w, const Real* b, int64_t M, int64_t K, int64_t N) {
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      double acc = b ? b[n] : 0.0;
      for (int64_t k = 0; k < K; ++k) acc += double(x[m * K + k]) * w[n * K + k];
      y[m * N + n] = Real(acc);
    }
  }
}

template <typename Real>
void linear_backward(Real* dx, Real* dw, Real* db, const Real* dy, const Real* x, const Real* w, int64_t M, int64_t K,
                     int64_t N) {
  if (dx) {
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t k = 0; k < K; ++k) {
        double acc = dx[m * K + k];
        for (int64_t n = 0; n < N; ++n) acc += double(dy[m * N + n]) * w[n * K + k];
        dx[m * K + k] = Real(acc);
      }
    }
  }
  if (dw) {
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t k = 0; k < K; ++k) {
        double acc = dw[n * K + k];
        for (int64_t m = 0; m < M; ++m) acc += double(dy[m * N + n]) * x[m * K + k];
        dw[n * K + k] = Real(acc);
      }
    }
  }
  if (db) {
    for (int64_t n = 0; n < N; ++n) {
      double acc = db[n];
      for (int64_t m = 0; m < M; ++m) acc += dy[m * N + n];
      db[n] = Real(acc);
    }
  }
}

template <typename Real>
void rmsnorm_forward(Real* y, Real* rstd, const Real* x, const Real* w, int64_t T, int64_t D, float eps) {
  for (int64_t t = 0; t < T; ++t) {
    const Real* x_D = x + t * D;
    double sum_sq = 0.0;
    for (int64_t d = 0; d < D; ++d) sum_sq += double(x_D[d]) * x_D[d];
    const double r = 1.0 / std::sqrt(sum_sq / double(D) + eps);
    rstd[t] = Real(r);
    for (int64_t d = 0; d < D; ++d) y[t * D + d] = Real(double(w[d]) * x_D[d] * r);
  }
}

// y_d = w_d·x_d·r with r = (mean(x²)+eps)^-½, so ∂r/∂x_j = −r³·x_j/D and
// dx_j = r·(w_j·dy_j − x_j·r²/D · Σ_d dy_d·w_d·x_d); dw_d = Σ_t dy_d·x_d·r.
template <typename Real>
void rmsnorm_backward(Real* dx, Real* dw, const Real* dy, const Real* x, const Real* w, const Real* rstd, int64_t T,
                      int64_t D) {
  std::vector<double> dw_acc(size_t(D), 0.0);
  for (int64_t t = 0; t < T; ++t) {
    const Real* x_D = x + t * D;
    const Real* dy_D = dy + t * D;
    const double r = rstd[t];
    double dot = 0.0;
    for (int64_t d = 0; d < D; ++d) dot += double(dy_D[d]) * w[d] * x_D[d];
    for (int64_t d = 0; d < D; ++d) {
      dx[t * D + d] = Real(dx[t * D + d] + r * (double(w[d]) * dy_D[d] - double(x_D[d]) * r * r * dot / double(D)));
      dw_acc[size_t(d)] += double(dy_D[d]) * x_D[d] * r;
    }
  }
  for (int64_t d = 0; d < D; ++d) dw[d] = Real(dw[d] + dw_acc[size_t(d)]);
}

template <typename Real>
void rope(Real* x, const Real* inv_freq, int64_t T, int64_t seq_len, int64_t n_heads, int64_t S,
          int64_t position_offset, RopeDirection direction) {
  check_rope_args(T, seq_len, n_heads, S);
  const int64_t half = S / 2;
  for (int64_t t = 0; t < T; ++t) {
    const double pos = double(t % seq_len + position_offset);
    for (int64_t h = 0; h < n_heads; ++h) {
      Real* x_S = x + (t * n_heads + h) * S;
      for (int64_t i = 0; i < half; ++i) {
        const double angle = (direction == RopeDirection::kInverse ? -pos : pos) * double(inv_freq[i]);
        const double c = std::cos(angle), s = std::sin(angle);
        const double a = x_S[i], b = x_S[i + half];
        x_S[i] = Real(a * c - b * s);
        x_S[i + half] = Real(b * c + a * s);
      }
    }
  }
}

namespace {

// First key visible from query i (HF sliding window: i − window < j ≤ i).
int64_t first_visible(int64_t i, int64_t window) { return window > 0 ? std::max<int64_t>(0, i - window + 1) : 0; }

// Row offsets into q/out [T, H, S] and k/v [T, KV, S] for sequence b, position i, head h.
struct AttnIndex {
  const AttentionShape& sh;
  int64_t q(int64_t b, int64_t i, int64_t h) const { return ((b * sh.seq_len + i) * sh.heads + h) * sh.head_dim; }
  int64_t kv(int64_t b, int64_t j, int64_t h) const {
    const int64_t kvh = h / (sh.heads / sh.kv_heads);  // GQA: query heads share kv heads in groups
    return ((b * sh.seq_len + j) * sh.kv_heads + kvh) * sh.head_dim;
  }
};

template <typename Real>
double dot(const Real* a, const Real* b, int64_t n) {
  double acc = 0.0;
  for (int64_t s = 0; s < n; ++s) acc += double(a[s]) * b[s];
  return acc;
}

}  // namespace

template <typename Real>
void attention_forward(Real* out, Real* lse, const Real* q, const Real* k, const Real* v, const AttentionShape& sh) {
  check_attention_shape(sh);
  const AttnIndex ix{sh};
  const int64_t S = sh.head_dim;
  std::vector<double> scores(size_t(sh.seq_len));
  for (int64_t b = 0; b < sh.batch; ++b) {
    for (int64_t h = 0; h < sh.heads; ++h) {
      for (int64_t i = 0; i < sh.seq_len; ++i) {
        const int64_t j0 = first_visible(i, sh.window);
        double max_score = -INFINITY;
        for (int64_t j = j0; j <= i; ++j) {
          scores[size_t(j)] = double(sh.scale) * dot(q + ix.q(b, i, h), k + ix.kv(b, j, h), S);
          max_score = std::max(max_score, scores[size_t(j)]);
        }
        double denom = 0.0;
        for (int64_t j = j0; j <= i; ++j) denom += std::exp(scores[size_t(j)] - max_score);
        lse[(b * sh.seq_len + i) * sh.heads + h] = Real(max_score + std::log(denom));
        for (int64_t s = 0; s < S; ++s) {
          double acc = 0.0;
          for (int64_t j = j0; j <= i; ++j) acc += std::exp(scores[size_t(j)] - max_score) * v[ix.kv(b, j, h) + s];
          out[ix.q(b, i, h) + s] = Real(acc / denom);
        }
      }
    }
  }
}

// With p_j = exp(score_j − lse): dv_j += p_j·dout; dp_j = dout·v_j; dscore_j = p_j·(dp_j − Σ_l p_l·dp_l);
// dq += scale·Σ_j dscore_j·k_j; dk_j += scale·dscore_j·q. Gradients are summed in double buffers
// (dk/dv collect over queries and over the query heads of a GQA group) and added to the outputs once.
template <typename Real>
void attention_backward(Real* dq, Real* dk, Real* dv, const Real* dout, const Real* q, const Real* k, const Real* v,
                        const Real* out, const Real* lse, const AttentionShape& sh) {
  check_attention_shape(sh);
  const AttnIndex ix{sh};
  const int64_t S = sh.head_dim, T = sh.batch * sh.seq_len;
  std::vector<double> dq_acc(size_t(T * sh.heads * S)), dk_acc(size_t(T * sh.kv_heads * S)), dv_acc(dk_acc.size());
  std::vector<double> p(size_t(sh.seq_len)), dp(size_t(sh.seq_len));
  for (int64_t b = 0; b < sh.batch; ++b) {
    for (int64_t h = 0; h < sh.heads; ++h) {
      for (int64_t i = 0; i < sh.seq_len; ++i) {
        const int64_t j0 = first_visible(i, sh.window);
        const Real* q_S = q + ix.q(b, i, h);
        const Real* dout_S = dout + ix.q(b, i, h);
        const double lse_i = lse[(b * sh.seq_len + i) * sh.heads + h];
        double p_dot_dp = 0.0;
        for (int64_t j = j0; j <= i; ++j) {
          p[size_t(j)] = std::exp(double(sh.scale) * dot(q_S, k + ix.kv(b, j, h), S) - lse_i);
          dp[size_t(j)] = dot(dout_S, v + ix.kv(b, j, h), S);
          p_dot_dp += p[size_t(j)] * dp[size_t(j)];
        }
        for (int64_t j = j0; j <= i; ++j) {
          const double dscore = p[size_t(j)] * (dp[size_t(j)] - p_dot_dp) * double(sh.scale);
          const int64_t kv_off = ix.kv(b, j, h), q_off = ix.q(b, i, h);
          for (int64_t s = 0; s < S; ++s) {
            dv_acc[size_t(kv_off + s)] += p[size_t(j)] * dout_S[s];
            dk_acc[size_t(kv_off + s)] += dscore * q_S[s];
            dq_acc[size_t(q_off + s)] += dscore * k[kv_off + s];
          }
        }
      }
    }
  }
  for (size_t e = 0; e < dq_acc.size(); ++e) dq[e] = Real(dq[e] + dq_acc[e]);
  for (size_t e = 0; e < dk_acc.size(); ++e) {
    dk[e] = Real(dk[e] + dk_acc[e]);
    dv[e] = Real(dv[e] + dv_acc[e]);
  }
}

// Query n of the new block sits at absolute position i = past + n; cache row j holds key position j.
template <typename Real>
void attention_decode(Real* out, const Real* q, const Real* k_cache, const Real* v_cache, int64_t past,
                      const AttentionShape& sh) {
  check_attention_decode(sh, past);
  const int64_t S = sh.head_dim, KV = sh.kv_heads, G = sh.heads / sh.kv_heads;
  std::vector<double> scores(size_t(past + sh.seq_len));
  for (int64_t h = 0; h < sh.heads; ++h) {
    for (int64_t n = 0; n < sh.seq_len; ++n) {
      const int64_t i = past + n, j0 = first_visible(i, sh.window);
      const Real* q_S = q + (n * sh.heads + h) * S;
      auto row = [&](int64_t j) { return (j * KV + h / G) * S; };
      double max_score = -INFINITY;
      for (int64_t j = j0; j <= i; ++j) {
        scores[size_t(j)] = double(sh.scale) * dot(q_S, k_cache + row(j), S);
        max_score = std::max(max_score, scores[size_t(j)]);
      }
      double denom = 0.0;
      for (int64_t j = j0; j <= i; ++j) denom += std::exp(scores[size_t(j)] - max_score);
      for (int64_t s = 0; s < S; ++s) {
        double acc = 0.0;
        for (int64_t j = j0; j <= i; ++j) acc += std::exp(scores[size_t(j)] - max_score) * v_cache[row(j) + s];
        out[(n * sh.heads + h) * S + s] = Real(acc / denom);
      }
    }
  }
}

namespace {

double sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

}  // namespace

template <typename Real>
void swiglu_forward(Real* h, const Real* g, const Real* u, int64_t n) {
  for (int64_t e = 0; e < n; ++e) h[e] = Real(double(g[e]) * sigmoid(g[e]) * u[e]);
}

// d silu(z)/dz = σ(z)·(1 + z·(1 − σ(z))).
template <typename Real>
void swiglu_backward(Real* dg, Real* du, const Real* dh, const Real* g, const Real* u, int64_t n) {
  for (int64_t e = 0; e < n; ++e) {
    const double sig = sigmoid(g[e]);
    dg[e] = Real(dg[e] + double(dh[e]) * u[e] * sig * (1.0 + double(g[e]) * (1.0 - sig)));
    du[e] = Real(du[e] + double(dh[e]) * g[e] * sig);
  }
}

template <typename Real>
void embedding_forward(Real* x, const Real* table, const int32_t* ids, int64_t T, int64_t D) {
  check_ids(ids, T);
  for (int64_t t = 0; t < T; ++t) std::copy_n(table + int64_t(ids[t]) * D, D, x + t * D);
}

template <typename Real>
double cross_entropy(Real* dlogits, const Real* logits, const int32_t* targets, int64_t T, int64_t V, float dloss) {
  check_targets(targets, T, V);
  int64_t counted = 0;
  for (int64_t t = 0; t < T; ++t) counted += targets[t] >= 0;
  double loss_sum = 0.0;
  for (int64_t t = 0; t < T; ++t) {
    const Real* l_V = logits + t * V;
    Real* dl_V = dlogits + t * V;
    if (targets[t] < 0) {
      std::fill_n(dl_V, V, Real(0));
      continue;
    }
    double max_logit = -INFINITY;
    for (int64_t c = 0; c < V; ++c) max_logit = std::max(max_logit, double(l_V[c]));
    double denom = 0.0;
    for (int64_t c = 0; c < V; ++c) denom += std::exp(l_V[c] - max_logit);
    const double lse = max_logit + std::log(denom);
    loss_sum += lse - l_V[targets[t]];
    const double grad_scale = double(dloss) / double(counted);
    for (int64_t c = 0; c < V; ++c) {
      const double prob = std::exp(l_V[c] - lse);
      dl_V[c] = Real((prob - (c == targets[t] ? 1.0 : 0.0)) * grad_scale);
    }
  }
  return counted > 0 ? loss_sum / double(counted) : 0.0;
}

template <typename Real>
void axpy(Real* y, const Real* x, float alpha, int64_t n) {
  for (int64_t e = 0; e < n; ++e) y[e] = Real(double(y[e]) + double(alpha) * x[e]);
}

// Explicit instantiations: float for RefBackend, double for the finite-difference tests.
#define UPCYCLE_REF_INSTANTIATE(op)       \
  template decltype(op<float>) op<float>; \
  template decltype(op<double>) op<double>;
UPCYCLE_REF_INSTANTIATE(linear_forward)
UPCYCLE_REF_INSTANTIATE(linear_backward)
UPCYCLE_REF_INSTANTIATE(rmsnorm_forward)
UPCYCLE_REF_INSTANTIATE(rmsnorm_backward)
UPCYCLE_REF_INSTANTIATE(rope)
UPCYCLE_REF_INSTANTIATE(attention_forward)
UPCYCLE_REF_INSTANTIATE(attention_backward)
UPCYCLE_REF_INSTANTIATE(attention_decode)
UPCYCLE_REF_INSTANTIATE(swiglu_forward)
UPCYCLE_REF_INSTANTIATE(swiglu_backward)
UPCYCLE_REF_INSTANTIATE(embedding_forward)
UPCYCLE_REF_INSTANTIATE(cross_entropy)
UPCYCLE_REF_INSTANTIATE(axpy)
#undef UPCYCLE_REF_INSTANTIATE

}  // namespace upcycle::backend::ref
