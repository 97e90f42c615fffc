// scripts/cuda-emulate: the cuda backend's attention and MoE row ops, run on the CPU emulator, against
// the ref backend. Each output must be within 1e-5 of its largest reference element (the op-case table's
// rule, docs/engine.md); backward ops start from random gradients, so their accumulate (+=) rule is
// checked too, and decode's cache rows past past+Tn hold NaN, so reading one would show.
// The CudaBackend is never constructed (its constructor needs a GPU): the ops are called non-virtually
// on zeroed storage, where the only member they read, the stream, is null as the emulator ignores it.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <tuple>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/ref/ref_kernels.h"

using namespace upcycle::backend;

namespace {

std::mt19937 rng(7);
int failures = 0;

std::vector<float> random_vector(size_t n, float stddev = 1.0f) {
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

void compare(const std::string& what, const std::vector<float>& got, const std::vector<float>& want,
             double rtol = 1e-5) {
  double largest = 0, worst = 0;
  size_t at = 0;
  for (float w : want) largest = std::max(largest, double(std::fabs(w)));
  for (size_t i = 0; i < want.size(); ++i) {
    const double err = std::fabs(double(got[i]) - want[i]);
    if (!(err <= worst)) {  // NaN counts as worst
      worst = err;
      at = i;
    }
  }
  const bool ok = worst <= rtol * largest;
  failures += !ok;
  std::printf("  %-26s %s max error %.3g (%.3g of the largest) at %zu\n", what.c_str(), ok ? "ok  " : "FAIL", worst,
              worst / largest, at);
}

// Gradients after an accumulating op minus the values they started from.
std::vector<float> increment(const std::vector<float>& after, const std::vector<float>& before) {
  std::vector<float> d(after.size());
  for (size_t i = 0; i < d.size(); ++i) d[i] = after[i] - before[i];
  return d;
}

struct AttnCase {
  int64_t batch, seq_len, heads, kv_heads, head_dim, window;
};

void check_attention(CudaBackend& cuda, const AttnCase& c) {
  std::printf("attention B=%ld T=%ld H=%ld KV=%ld S=%ld window=%ld\n", long(c.batch), long(c.seq_len), long(c.heads),
              long(c.kv_heads), long(c.head_dim), long(c.window));
  AttentionShape sh;
  sh.batch = c.batch;
  sh.seq_len = c.seq_len;
  sh.heads = c.heads;
  sh.kv_heads = c.kv_heads;
  sh.head_dim = c.head_dim;
  sh.window = c.window;
  sh.scale = 1.0f / std::sqrt(float(c.head_dim));
  const size_t nq = size_t(c.batch * c.seq_len * c.heads * c.head_dim);
  const size_t nkv = size_t(c.batch * c.seq_len * c.kv_heads * c.head_dim);
  const size_t nlse = size_t(c.batch * c.seq_len * c.heads);
  const auto q = random_vector(nq, 1.5f), k = random_vector(nkv, 1.5f), v = random_vector(nkv);
  const auto dout = random_vector(nq);

  std::vector<float> out_ref(nq), lse_ref(nlse), out(nq, 9.0f), lse(nlse, 9.0f);
  ref::attention_forward(out_ref.data(), lse_ref.data(), q.data(), k.data(), v.data(), sh);
  cuda.CudaBackend::attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), sh);
  compare("forward out", out, out_ref);
  compare("forward lse", lse, lse_ref);

  const auto dq0 = random_vector(nq), dk0 = random_vector(nkv), dv0 = random_vector(nkv);
  auto dq_ref = dq0, dk_ref = dk0, dv_ref = dv0, dq = dq0, dk = dk0, dv = dv0;
  ref::attention_backward(dq_ref.data(), dk_ref.data(), dv_ref.data(), dout.data(), q.data(), k.data(), v.data(),
                          out_ref.data(), lse_ref.data(), sh);
  cuda.CudaBackend::attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(),
                                       out_ref.data(), lse_ref.data(), sh);
  compare("backward dq (added)", increment(dq, dq0), increment(dq_ref, dq0));
  compare("backward dk (added)", increment(dk, dk0), increment(dk_ref, dk0));
  compare("backward dv (added)", increment(dv, dv0), increment(dv_ref, dv0));

  if (c.batch != 1) return;
  // Decode: a prompt (tiled path) and steps of 8, 5 and 1 tokens (split-key path).
  for (int64_t past : {int64_t(0), c.seq_len / 3, c.seq_len - 8, c.seq_len - 5, c.seq_len - 1}) {
    AttentionShape step = sh;
    step.seq_len = c.seq_len - past;
    const int64_t cache_rows = c.seq_len + 5;
    std::vector<float> k_cache(size_t(cache_rows * c.kv_heads * c.head_dim), NAN), v_cache(k_cache.size(), NAN);
    std::copy(k.begin(), k.end(), k_cache.begin());
    std::copy(v.begin(), v.end(), v_cache.begin());
    const float* q_new = q.data() + past * c.heads * c.head_dim;
    std::vector<float> o_ref(size_t(step.seq_len * c.heads * c.head_dim)), o(o_ref.size(), 9.0f);
    ref::attention_decode(o_ref.data(), q_new, k_cache.data(), v_cache.data(), past, step);
    cuda.CudaBackend::attention_decode(o.data(), q_new, k_cache.data(), v_cache.data(), past, step);
    compare("decode past=" + std::to_string(past), o, o_ref);
  }
}

void check_softmax_rows(CudaBackend& cuda, int64_t T, int64_t E) {
  std::printf("softmax rows T=%ld E=%ld\n", long(T), long(E));
  const auto logits = random_vector(size_t(T * E), 3.0f), dprobs = random_vector(size_t(T * E));
  std::vector<float> p_ref(size_t(T * E)), p(size_t(T * E), 9.0f);
  ref::softmax_rows(p_ref.data(), logits.data(), T, E);
  cuda.CudaBackend::softmax_rows(p.data(), logits.data(), T, E);
  compare("softmax_rows", p, p_ref);
  const auto dl0 = random_vector(size_t(T * E));
  auto dl_ref = dl0, dl = dl0;
  ref::softmax_rows_backward(dl_ref.data(), dprobs.data(), p_ref.data(), T, E);
  cuda.CudaBackend::softmax_rows_backward(dl.data(), dprobs.data(), p_ref.data(), T, E);
  compare("softmax_rows_backward", increment(dl, dl0), increment(dl_ref, dl0));
}

void check_gather_scatter(CudaBackend& cuda, int64_t A, int64_t T, int64_t D) {
  std::printf("gather/scatter A=%ld T=%ld D=%ld\n", long(A), long(T), long(D));
  std::vector<int32_t> rows(static_cast<size_t>(A));
  std::uniform_int_distribution<int32_t> pick(0, int32_t(T) - 1);
  for (int32_t& r : rows) r = pick(rng);
  const auto x = random_vector(size_t(T * D)), weights = random_vector(size_t(A));
  const auto xa = random_vector(size_t(A * D)), dy = random_vector(size_t(T * D));
  std::vector<float> g_ref(size_t(A * D)), g(size_t(A * D), 9.0f);
  ref::gather_rows(g_ref.data(), x.data(), rows.data(), A, T, D);
  cuda.CudaBackend::gather_rows(g.data(), x.data(), rows.data(), A, T, D);
  compare("gather_rows", g, g_ref, 0.0);
  for (const float* w : {weights.data(), static_cast<const float*>(nullptr)}) {
    const std::string tag = w ? " (weights)" : " (unit)";
    const auto y0 = random_vector(size_t(T * D));
    auto y_ref = y0, y = y0;
    ref::scatter_add_rows(y_ref.data(), xa.data(), rows.data(), w, A, T, D);
    cuda.CudaBackend::scatter_add_rows(y.data(), xa.data(), rows.data(), w, A, T, D);
    compare("scatter_add_rows" + tag, increment(y, y0), increment(y_ref, y0));
    const auto dx0 = random_vector(size_t(A * D)), dw0 = random_vector(size_t(A));
    auto dx_ref = dx0, dx = dx0, dw_ref = dw0, dw = dw0;
    ref::scatter_add_rows_backward(dx_ref.data(), dw_ref.data(), dy.data(), xa.data(), rows.data(), w, A, T, D);
    cuda.CudaBackend::scatter_add_rows_backward(dx.data(), dw.data(), dy.data(), xa.data(), rows.data(), w, A, T, D);
    compare("scatter backward dx" + tag, increment(dx, dx0), increment(dx_ref, dx0));
    compare("scatter backward dw" + tag, increment(dw, dw0), increment(dw_ref, dw0));
  }
}

alignas(CudaBackend) unsigned char backend_storage[sizeof(CudaBackend)];

}  // namespace

int main() {
  std::memset(backend_storage, 0, sizeof backend_storage);
  CudaBackend& cuda = *reinterpret_cast<CudaBackend*>(backend_storage);
  // Odd sizes, GQA/MQA/MHA, windows below T, S from 10 to 256 (each column-count instantiation class:
  // 1, 2, 3, 4 columns per lane with 4 rows per warp; 7 and 8 with 2), several tiles of queries and keys.
  for (const AttnCase& c : {AttnCase{2, 37, 4, 2, 10, 0}, AttnCase{1, 70, 3, 1, 64, 9}, AttnCase{1, 45, 2, 2, 128, 0},
                            AttnCase{1, 33, 6, 3, 200, 5}, AttnCase{1, 40, 2, 1, 256, 0},
                            AttnCase{1, 75, 2, 1, 33, 40}, AttnCase{1, 300, 2, 1, 16, 0}}) {
    check_attention(cuda, c);
  }
  for (auto [T, E] : {std::pair<int64_t, int64_t>{7, 5}, {9, 64}, {3, 70}}) check_softmax_rows(cuda, T, E);
  for (auto [A, T, D] : {std::tuple<int64_t, int64_t, int64_t>{13, 5, 10}, {20, 20, 3}, {40, 6, 300}}) {
    check_gather_scatter(cuda, A, T, D);
  }
  std::printf("%d failure(s), %ld kernel launches\n", failures, cuda_emulate::launches);
  return failures == 0 ? 0 : 1;
}
