// An independent forward pass: the HF decoder equations as straight double-precision loops over the
// parameter store (looked up by HF weight names, no backend op, no model code besides the store),
// compared with the engine's logits on a tiny llama, a tiny qwen3 with llama3 RoPE scaling and
// q/k norms, and a qwen2 with biases and a sliding window — on both backends.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/transformer.h"
#include "support/backend_test_support.h"
#include "support/model_test_support.h"

namespace upcycle::model {
namespace {

using Mat = std::vector<double>;  // row-major

struct Ref {
  const ModelConfig& c;
  const TensorStore& p;
  const float* w(const std::string& name) const { return p.at(name); }
  const float* maybe(const std::string& name) const { return p.find(name); }

  // y[T,N] = x[T,K] · W[N,K]ᵀ + b
  Mat linear(const Mat& x, int64_t T, int64_t K, int64_t N, const float* W, const float* b) const {
    Mat y(size_t(T * N));
    for (int64_t t = 0; t < T; ++t)
      for (int64_t n = 0; n < N; ++n) {
        double s = b ? b[n] : 0.0;
        for (int64_t k = 0; k < K; ++k) s += x[size_t(t * K + k)] * W[n * K + k];
        y[size_t(t * N + n)] = s;
      }
    return y;
  }
  // HF RMSNorm over rows of width D.
  Mat rmsnorm(const Mat& x, int64_t rows, int64_t D, const float* weight) const {
    Mat y(x.size());
    for (int64_t r = 0; r < rows; ++r) {
      double ms = 0;
      for (int64_t d = 0; d < D; ++d) ms += x[size_t(r * D + d)] * x[size_t(r * D + d)];
      const double inv = 1.0 / std::sqrt(ms / double(D) + c.rms_norm_eps);
      for (int64_t d = 0; d < D; ++d) y[size_t(r * D + d)] = weight[d] * x[size_t(r * D + d)] * inv;
    }
    return y;
  }
  // q·cos + rotate_half(q)·sin, rotate_half(x) = cat(−x2, x1), angle = pos·inv_freq.
  void rope(Mat& x, int64_t T, int64_t Tseq, int64_t heads, int64_t S, const std::vector<double>& inv_freq) const {
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < heads; ++h) {
        double* v = x.data() + (t * heads + h) * S;
        for (int64_t i = 0; i < S / 2; ++i) {
          const double a = double(t % Tseq) * inv_freq[size_t(i)];
          const double x1 = v[i], x2 = v[i + S / 2];
          v[i] = x1 * std::cos(a) - x2 * std::sin(a);
          v[i + S / 2] = x2 * std::cos(a) + x1 * std::sin(a);
        }
      }
  }

  Mat attention(const Mat& q, const Mat& k, const Mat& v, int64_t B, int64_t Tseq, std::optional<int64_t> window) const {
    const int64_t H = c.num_attention_heads, KV = c.num_key_value_heads, S = c.head_dim;
    Mat out(size_t(B * Tseq * H * S), 0.0);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t kvh = h / (H / KV);
        for (int64_t i = 0; i < Tseq; ++i) {
          std::vector<double> score(size_t(Tseq), -INFINITY);
          double mx = -INFINITY;
          for (int64_t j = 0; j <= i; ++j) {
            if (window && j <= i - *window) continue;
            double s = 0;
            for (int64_t d = 0; d < S; ++d)
              s += q[size_t(((b * Tseq + i) * H + h) * S + d)] * k[size_t(((b * Tseq + j) * KV + kvh) * S + d)];
            score[size_t(j)] = s / std::sqrt(double(S));
            mx = std::max(mx, score[size_t(j)]);
          }
          double z = 0;
          for (double& s : score) z += (s = std::exp(s - mx));
          for (int64_t j = 0; j <= i; ++j)
            for (int64_t d = 0; d < S; ++d)
              out[size_t(((b * Tseq + i) * H + h) * S + d)] +=
                  score[size_t(j)] / z * v[size_t(((b * Tseq + j) * KV + kvh) * S + d)];
        }
      }
    return out;
  }

  Mat logits(const std::vector<int32_t>& ids, int64_t B, int64_t Tseq, const std::vector<double>& inv_freq) const {
    const int64_t T = B * Tseq, D = c.hidden_size, H = c.num_attention_heads, KV = c.num_key_value_heads;
    const int64_t S = c.head_dim, F = c.intermediate_size, V = c.vocab_size;
    Mat x(size_t(T * D));
    const float* embed = w("model.embed_tokens.weight");
    for (int64_t t = 0; t < T; ++t)
      for (int64_t d = 0; d < D; ++d) x[size_t(t * D + d)] = embed[ids[size_t(t)] * D + d];
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
      const std::string pre = "model.layers." + std::to_string(l) + ".";
      Mat n = rmsnorm(x, T, D, w(pre + "input_layernorm.weight"));
      Mat q = linear(n, T, D, H * S, w(pre + "self_attn.q_proj.weight"), maybe(pre + "self_attn.q_proj.bias"));
      Mat k = linear(n, T, D, KV * S, w(pre + "self_attn.k_proj.weight"), maybe(pre + "self_attn.k_proj.bias"));
      Mat v = linear(n, T, D, KV * S, w(pre + "self_attn.v_proj.weight"), maybe(pre + "self_attn.v_proj.bias"));
      if (c.qk_norm) {
        q = rmsnorm(q, T * H, S, w(pre + "self_attn.q_norm.weight"));
        k = rmsnorm(k, T * KV, S, w(pre + "self_attn.k_norm.weight"));
      }
      rope(q, T, Tseq, H, S, inv_freq);
      rope(k, T, Tseq, KV, S, inv_freq);
      Mat a = attention(q, k, v, B, Tseq, c.sliding_window_for_layer(l));
      Mat o = linear(a, T, H * S, D, w(pre + "self_attn.o_proj.weight"), maybe(pre + "self_attn.o_proj.bias"));
      for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
      n = rmsnorm(x, T, D, w(pre + "post_attention_layernorm.weight"));
      Mat g = linear(n, T, D, F, w(pre + "mlp.gate_proj.weight"), nullptr);
      Mat u = linear(n, T, D, F, w(pre + "mlp.up_proj.weight"), nullptr);
      for (size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
      Mat y = linear(g, T, F, D, w(pre + "mlp.down_proj.weight"), nullptr);
      for (size_t i = 0; i < x.size(); ++i) x[i] += y[i];
    }
    Mat n = rmsnorm(x, T, D, w("model.norm.weight"));
    const float* head = c.tie_word_embeddings ? embed : w("lm_head.weight");
    return linear(n, T, D, V, head, nullptr);
  }
};

void compare(const ModelConfig& c, const std::vector<double>& inv_freq) {
  const int64_t B = 2, Tseq = 6;
  std::vector<int32_t> ids;
  for (int64_t i = 0; i < B * Tseq; ++i) ids.push_back(int32_t((i * 7 + 3) % c.vocab_size));
  for (auto kind : test::fp32_backend_kinds()) {
    auto be = backend::make_backend(kind);
    Transformer m(c, *be);
    test::fill_random(m.params(), 21, 0.3f);
    const float* got = m.forward(ids.data(), B, Tseq);
    Mat want = Ref{c, m.params()}.logits(ids, B, Tseq, inv_freq);
    std::vector<float> got_v(got, got + want.size()), want_v(want.begin(), want.end());
    EXPECT_TRUE(test::all_close(got_v, want_v, 1e-4)) << be->name();
    // The comparison is not vacuous: logits vary across tokens.
    EXPECT_GT(test::max_abs(want_v), 0.1);
  }
}

TEST(ModelReferenceForward, TinyLlamaTied) {
  ModelConfig c = test::tiny_model_config(Family::kLlama);
  c.hidden_size = 16, c.num_attention_heads = 4, c.num_key_value_heads = 2, c.head_dim = 4, c.vocab_size = 23;
  c.tie_word_embeddings = true;
  std::vector<double> inv;
  for (int64_t i = 0; i < c.head_dim; i += 2) inv.push_back(std::pow(c.rope.theta, -double(i) / double(c.head_dim)));
  compare(c, inv);
}

TEST(ModelReferenceForward, TinyQwen3WithLlama3Rope) {
  ModelConfig c = test::tiny_model_config(Family::kQwen3);
  c.hidden_size = 16, c.num_attention_heads = 2, c.num_key_value_heads = 1, c.head_dim = 16, c.vocab_size = 19;
  // Wavelengths 2π·100^(i/16) ∈ [6.3, 350]: with original length 64, low 1, high 4, all three bands occur.
  c.rope = RopeConfig{"llama3", 100.0, 4.0, 1.0, 4.0, 64};
  compare(c, test::llama3_inv_freq_reference(100.0, 16, 4.0, 1.0, 4.0, 64.0));
}

TEST(ModelReferenceForward, TinyQwen2BiasesAndWindow) {
  ModelConfig c = test::tiny_model_config(Family::kQwen2);
  c.sliding_window = 2;
  c.max_window_layers = 1;
  std::vector<double> inv;
  for (int64_t i = 0; i < c.head_dim; i += 2) inv.push_back(std::pow(c.rope.theta, -double(i) / double(c.head_dim)));
  compare(c, inv);
}

}  // namespace
}  // namespace upcycle::model
