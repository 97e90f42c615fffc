// mergekit-moe gate modes on the upcycle engine (see router_from_prompts.h). Accumulation is in
// double so the rows depend only on the engine's fp32 hidden states, not on summation order here.
#include "recipes/router_from_prompts.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <utility>

#include "backend/host_view.h"
#include "core/error.h"
#include "core/rng.h"

namespace upcycle::recipes {
namespace {

constexpr std::array<std::pair<GateMode, std::string_view>, 6> kGateModeNames = {{
    {GateMode::kHidden, "hidden"},
    {GateMode::kHiddenAvg, "hidden_avg"},
    {GateMode::kHiddenLast, "hidden_last"},
    {GateMode::kCheapEmbed, "cheap_embed"},
    {GateMode::kRandom, "random"},
    {GateMode::kUniformRandom, "uniform_random"},
}};

// mergekit divides by max(‖v‖, 1e-8).
void normalise(std::vector<double>& v) {
  double sq = 0;
  for (double x : v) sq += x * x;
  const double n = std::max(std::sqrt(sq), 1e-8);
  for (double& x : v) x /= n;
}

void check_prompts(const ModelConfig& config, std::span<const ExpertPrompts> experts, const std::string& file) {
  for (size_t e = 0; e < experts.size(); ++e) {
    const std::string where = "experts[" + std::to_string(e) + "]";
    if (experts[e].positive.empty())
      throw Error(where + ".positive_prompts: needs at least one prompt for this gate_mode", file);
    for (int sign = 0; sign < 2; ++sign) {
      const auto& prompts = sign == 0 ? experts[e].positive : experts[e].negative;
      const std::string key = where + (sign == 0 ? ".positive_prompts[" : ".negative_prompts[");
      for (size_t p = 0; p < prompts.size(); ++p) {
        if (prompts[p].empty()) throw Error(key + std::to_string(p) + "]: no tokens after tokenization", file);
        for (int32_t id : prompts[p])
          if (id < 0 || id >= config.vocab_size)
            throw Error(key + std::to_string(p) + "]: token id " + std::to_string(id) + " outside the vocabulary [0, " +
                            std::to_string(config.vocab_size) + ")",
                        file);
      }
    }
  }
}

// Σ over prompts of each prompt's per-layer vector ([L][D]): last token or mean over tokens.
std::vector<std::vector<double>> hidden_sum(model::Transformer& base, const std::vector<std::vector<int32_t>>& prompts,
                                            GateMode mode) {
  const int64_t L = base.config().num_hidden_layers, D = base.config().hidden_size;
  std::vector<std::vector<double>> sum(size_t(L), std::vector<double>(size_t(D), 0.0));
  for (const auto& ids : prompts) {
    const int64_t T = int64_t(ids.size());
    base.forward(ids.data(), 1, T);
    for (int64_t l = 0; l < L; ++l) {
      const auto h_TD = backend::host_view(base.backend(), base.hidden_states(l), size_t(T * D));  // the readback
      if (mode == GateMode::kHiddenAvg) {
        std::vector<double> mean(size_t(D), 0.0);
        for (int64_t t = 0; t < T; ++t)
          for (int64_t d = 0; d < D; ++d) mean[size_t(d)] += h_TD[t * D + d];
        for (int64_t d = 0; d < D; ++d) sum[size_t(l)][size_t(d)] += mean[size_t(d)] / double(T);
      } else {
        for (int64_t d = 0; d < D; ++d) sum[size_t(l)][size_t(d)] += h_TD[(T - 1) * D + d];
      }
    }
  }
  return sum;
}

// Rows of one expert for every layer, hidden modes: normalise(mean_pos − mean_neg).
std::vector<std::vector<double>> hidden_rows(model::Transformer& base, const ExpertPrompts& prompts, GateMode mode) {
  auto rows = hidden_sum(base, prompts.positive, mode);
  const double np = double(prompts.positive.size());
  std::vector<std::vector<double>> neg;
  if (!prompts.negative.empty()) neg = hidden_sum(base, prompts.negative, mode);
  const double nn = double(prompts.negative.size());
  for (size_t l = 0; l < rows.size(); ++l) {
    for (size_t d = 0; d < rows[l].size(); ++d) {
      rows[l][d] /= np;
      if (!neg.empty()) rows[l][d] -= neg[l][d] / nn;
    }
    normalise(rows[l]);
  }
  return rows;
}

// mergekit's get_cheap_embedding: the normalised sum of embedding rows over prompts and tokens.
std::vector<double> cheap_embedding(const EmbedRowReader& embed_row, int64_t D,
                                    const std::vector<std::vector<int32_t>>& prompts) {
  std::vector<double> v(size_t(D), 0.0);
  std::vector<float> row_D(static_cast<size_t>(D));
  for (const auto& ids : prompts)
    for (int32_t id : ids) {
      embed_row(id, row_D.data());
      for (int64_t d = 0; d < D; ++d) v[size_t(d)] += row_D[size_t(d)];
    }
  normalise(v);
  return v;
}

}  // namespace

std::string_view gate_mode_name(GateMode mode) {
  for (const auto& [m, name] : kGateModeNames)
    if (m == mode) return name;
  UPCYCLE_CHECK(false, "unknown gate mode");
}

std::optional<GateMode> gate_mode_from_name(std::string_view name) {
  for (const auto& [m, n] : kGateModeNames)
    if (n == name) return m;
  return std::nullopt;
}

bool gate_mode_uses_prompts(GateMode mode) { return mode != GateMode::kRandom && mode != GateMode::kUniformRandom; }

std::vector<std::vector<float>> random_router_rows(const ModelConfig& config, int64_t num_experts, GateMode mode,
                                                   uint64_t seed) {
  UPCYCLE_CHECK(!gate_mode_uses_prompts(mode), "random_router_rows needs a random gate mode");
  const int64_t L = config.num_hidden_layers, D = config.hidden_size;
  const size_t n = size_t(num_experts * D);
  std::vector<std::vector<float>> out(static_cast<size_t>(L), std::vector<float>(n));
  const double scale = 1.0 / std::sqrt(double(D));
  for (int64_t l = 0; l < L; ++l) {
    const CounterRng rng(seed, "model.layers." + std::to_string(l) + ".router");
    if (mode == GateMode::kRandom) {
      rng.fill_normal(out[size_t(l)].data(), 0, n, 0.0f, 1.0f);
    } else {
      for (size_t i = 0; i < n; ++i) out[size_t(l)][i] = float((2.0 * rng.uniform(i) - 1.0) * scale);
    }
  }
  return out;
}

std::vector<std::vector<float>> router_from_prompts(model::Transformer& base, GateMode mode,
                                                    std::span<const ExpertPrompts> experts, uint64_t seed,
                                                    const std::string& label_file) {
  const ModelConfig& config = base.config();
  const int64_t E = int64_t(experts.size()), L = config.num_hidden_layers, D = config.hidden_size;
  if (!gate_mode_uses_prompts(mode)) return random_router_rows(config, E, mode, seed);
  UPCYCLE_CHECK(!config.is_moe(), "prompt-based router init runs the dense base model");
  if (mode == GateMode::kCheapEmbed) {
    const float* embed_VD = base.params().find("model.embed_tokens.weight");
    UPCYCLE_CHECK(embed_VD != nullptr, "the transformer has an embedding table");
    return cheap_embed_router_rows(
        config, experts,  // one embedding row per prompt token read back, straight into place
        [&](int32_t id, float* row_D) {
          base.backend().download(row_D, embed_VD + int64_t(id) * D, size_t(D) * sizeof(float));
        },
        label_file);
  }
  check_prompts(config, experts, label_file);

  std::vector<std::vector<float>> out(size_t(L), std::vector<float>(size_t(E * D)));
  for (int64_t e = 0; e < E; ++e) {
    const std::vector<std::vector<double>> rows = hidden_rows(base, experts[size_t(e)], mode);
    for (int64_t l = 0; l < L; ++l)
      for (int64_t d = 0; d < D; ++d) out[size_t(l)][size_t(e * D + d)] = float(rows[size_t(l)][size_t(d)]);
  }
  return out;
}

std::vector<std::vector<float>> cheap_embed_router_rows(const ModelConfig& config,
                                                        std::span<const ExpertPrompts> experts,
                                                        const EmbedRowReader& embed_row, const std::string& label_file) {
  const int64_t E = int64_t(experts.size()), L = config.num_hidden_layers, D = config.hidden_size;
  check_prompts(config, experts, label_file);  // every id is inside the table before any row is read
  std::vector<std::vector<float>> out(size_t(L), std::vector<float>(size_t(E * D)));
  for (int64_t e = 0; e < E; ++e) {
    const ExpertPrompts& prompts = experts[size_t(e)];
    std::vector<double> v = cheap_embedding(embed_row, D, prompts.positive);
    if (!prompts.negative.empty()) {
      const std::vector<double> neg = cheap_embedding(embed_row, D, prompts.negative);
      for (int64_t d = 0; d < D; ++d) v[size_t(d)] -= neg[size_t(d)];
      normalise(v);
    }
    for (int64_t l = 0; l < L; ++l)  // the same row on every layer
      for (int64_t d = 0; d < D; ++d) out[size_t(l)][size_t(e * D + d)] = float(v[size_t(d)]);
  }
  return out;
}

std::vector<double> symmetric_eigenvalues(std::vector<double> a_NN, int64_t n) {
  UPCYCLE_CHECK(int64_t(a_NN.size()) == n * n, "square matrix");
  auto at = [&](int64_t i, int64_t j) -> double& { return a_NN[size_t(i * n + j)]; };
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0, diag = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) (i == j ? diag : off) += at(i, j) * at(i, j);
    if (off <= 1e-30 * std::max(diag, 1e-300)) break;
    for (int64_t p = 0; p < n; ++p) {
      for (int64_t q = p + 1; q < n; ++q) {
        const double apq = at(p, q);
        if (apq == 0.0) continue;
        // Rotation zeroing a[p][q] (Golub & Van Loan, the smaller root for stability).
        const double theta = (at(q, q) - at(p, p)) / (2.0 * apq);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::abs(theta) + std::sqrt(theta * theta + 1.0));
        const double c = 1.0 / std::sqrt(t * t + 1.0), s = t * c;
        for (int64_t k = 0; k < n; ++k) {  // columns p, q
          const double akp = at(k, p), akq = at(k, q);
          at(k, p) = c * akp - s * akq;
          at(k, q) = s * akp + c * akq;
        }
        for (int64_t k = 0; k < n; ++k) {  // rows p, q
          const double apk = at(p, k), aqk = at(q, k);
          at(p, k) = c * apk - s * aqk;
          at(q, k) = s * apk + c * aqk;
        }
      }
    }
  }
  std::vector<double> eig(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) eig[size_t(i)] = at(i, i);
  std::sort(eig.begin(), eig.end());
  return eig;
}

double condition_number(std::span<const float> g_ED, int64_t E, int64_t D) {
  UPCYCLE_CHECK(int64_t(g_ED.size()) == E * D && E > 0 && D > 0, "gate matrix shape");
  // Gram matrix of the smaller side: its eigenvalues are the squared singular values.
  const bool rows = E <= D;
  const int64_t n = rows ? E : D, m = rows ? D : E;
  auto elem = [&](int64_t i, int64_t k) { return double(rows ? g_ED[size_t(i * D + k)] : g_ED[size_t(k * D + i)]); };
  std::vector<double> gram(size_t(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i; j < n; ++j) {
      double s = 0;
      for (int64_t k = 0; k < m; ++k) s += elem(i, k) * elem(j, k);
      gram[size_t(i * n + j)] = gram[size_t(j * n + i)] = s;
    }
  const std::vector<double> eig = symmetric_eigenvalues(std::move(gram), n);
  const double hi = eig.back(), lo = eig.front();
  // Eigenvalues of a Gram matrix are ≥ 0; round-off below hi·1e-15 is rank deficiency.
  if (hi <= 0 || lo <= hi * 1e-15) return std::numeric_limits<double>::infinity();
  return std::sqrt(hi / lo);
}

std::optional<std::string> degenerate_gate_warning(const std::vector<std::vector<float>>& gates, int64_t E, int64_t D,
                                                   double threshold) {
  std::vector<size_t> bad;
  for (size_t l = 0; l < gates.size(); ++l)
    if (!(condition_number(gates[l], E, D) <= threshold)) bad.push_back(l);  // NaN counts as degenerate
  if (bad.empty()) return std::nullopt;
  std::string which;
  if (bad.size() == 1) {
    which = "layer " + std::to_string(bad[0]) + " has";
  } else if (bad.size() == gates.size()) {
    which = "all layers have";
  } else {
    which = "layers ";
    for (size_t i = 0; i < bad.size(); ++i)
      which += (i == 0 ? "" : i + 1 == bad.size() ? " and " : ", ") + std::to_string(bad[i]);
    which += " have";
  }
  return which + " degenerate routing parameters (gate condition number > " + std::to_string(int(threshold)) +
         "): the prompts may be too similar, so some experts will be underused";
}

}  // namespace upcycle::recipes
