// Expert similarities (expert_similarity.h). Ordered: one fp64 dot product per pair, norms computed
// once, pairs spread over OpenMP threads (a real layer has E·(E−1)/2 pairs of 3·F·D values).
// Neuron-matched: each FFN becomes a NeuronSet (gate/up rows viewed in place, down transposed once,
// fp64 squared norms), then the F_a×F_b cosines are visited in kBlock×kBlock tiles (both tiles' neuron
// vectors stay in cache) keeping only running maxima per row and per column — memory O(F·D), never
// O(F_a·F_b). Row blocks are spread over OpenMP threads; maxima merge order-independently, so results
// do not depend on the thread count.
#include "analysis/expert_similarity.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

#include "core/error.h"

namespace upcycle::analysis {
namespace {

double cosine_from(double dot, double norm2_a, double norm2_b) {
  if (norm2_a <= 0.0 || norm2_b <= 0.0) return 0.0;
  return dot / (std::sqrt(norm2_a) * std::sqrt(norm2_b));
}

// ---- neuron-matched ----

constexpr int64_t kBlock = 16;  // neurons per tile side: 2·16·3·D floats (≤ 1.5 MiB at D = 4096)

// fp64 dot product of n floats. Four fixed accumulators let the compiler vectorise while keeping one
// summation order, so equal inputs give bit-equal results (what makes copies score exactly 1).
double dot_fp64(const float* x, const float* y, int64_t n) {
  double acc[4] = {0.0, 0.0, 0.0, 0.0};
  int64_t k = 0;
  for (; k + 4 <= n; k += 4)
    for (int l = 0; l < 4; ++l) acc[l] += double(x[k + l]) * double(y[k + l]);
  for (; k < n; ++k) acc[0] += double(x[k]) * double(y[k]);
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

// One FFN's neuron vectors n_i = [gate_row_i; up_row_i; down_col_i] without concatenating them.
struct NeuronSet {
  int64_t F = 0, D = 0;
  const float* gate_FD = nullptr;
  const float* up_FD = nullptr;
  std::vector<float> down_FD;  // down_DF transposed: neuron i's down column as a contiguous row
  std::vector<double> norm2_F;

  double dot(int64_t i, const NeuronSet& o, int64_t j) const {
    return dot_fp64(gate_FD + i * D, o.gate_FD + j * D, D) + dot_fp64(up_FD + i * D, o.up_FD + j * D, D) +
           dot_fp64(down_FD.data() + i * D, o.down_FD.data() + j * D, D);
  }
  double cosine(int64_t i, const NeuronSet& o, int64_t j) const {
    if (norm2_F[size_t(i)] <= 0.0 || o.norm2_F[size_t(j)] <= 0.0) return 0.0;
    // √(|a|²·|b|²) rather than |a|·|b|: for bit-equal vectors dot = |a|² = |b|² and this is exactly 1.
    const double c = dot(i, o, j) / std::sqrt(norm2_F[size_t(i)] * o.norm2_F[size_t(j)]);
    return std::clamp(c, -1.0, 1.0);
  }
};

NeuronSet neuron_set(const FfnView& v) {
  UPCYCLE_CHECK(v.F > 0 && v.D > 0, "neuron_set: empty FFN");
  const size_t FD = size_t(v.F * v.D);
  UPCYCLE_CHECK(v.gate_FD.size() == FD && v.up_FD.size() == FD && v.down_DF.size() == FD,
                "neuron_set: gate/up/down sizes differ from F·D");
  NeuronSet s{v.F, v.D, v.gate_FD.data(), v.up_FD.data(), std::vector<float>(FD), std::vector<double>(size_t(v.F))};
  for (int64_t d = 0; d < v.D; ++d)
    for (int64_t i = 0; i < v.F; ++i) s.down_FD[size_t(i * v.D + d)] = v.down_DF[size_t(d * v.F + i)];
  for (int64_t i = 0; i < v.F; ++i) s.norm2_F[size_t(i)] = s.dot(i, s, i);
  return s;
}

// Best cosines between the query neurons `rows` of a and every neuron of b: best_row[r] = max over all
// j; with want_cols also best_col[j] = max over the rows (all of a's neurons only if rows are all).
struct BestCosines {
  std::vector<double> best_row, best_col;
};

BestCosines best_cosines(const NeuronSet& a, const NeuronSet& b, const std::vector<int64_t>& rows, bool want_cols) {
  UPCYCLE_CHECK(a.D == b.D, "matched similarity: FFNs of different model width D");
  constexpr double kNone = -std::numeric_limits<double>::infinity();
  const int64_t R = int64_t(rows.size());
  BestCosines out{std::vector<double>(size_t(R), kNone), std::vector<double>(want_cols ? size_t(b.F) : 0, kNone)};
  const int64_t row_blocks = (R + kBlock - 1) / kBlock;
#pragma omp parallel
  {
    std::vector<double> col_local(out.best_col.size(), kNone);
#pragma omp for schedule(dynamic)
    for (int64_t rb = 0; rb < row_blocks; ++rb) {
      const int64_t r_end = std::min(R, (rb + 1) * kBlock);
      for (int64_t j0 = 0; j0 < b.F; j0 += kBlock) {
        const int64_t j_end = std::min(b.F, j0 + kBlock);
        for (int64_t r = rb * kBlock; r < r_end; ++r)
          for (int64_t j = j0; j < j_end; ++j) {
            const double c = a.cosine(rows[size_t(r)], b, j);
            out.best_row[size_t(r)] = std::max(out.best_row[size_t(r)], c);
            if (want_cols) col_local[size_t(j)] = std::max(col_local[size_t(j)], c);
          }
      }
    }
#pragma omp critical(upcycle_best_cosines)
    for (size_t j = 0; j < col_local.size(); ++j) out.best_col[j] = std::max(out.best_col[j], col_local[j]);
  }
  return out;
}

double mean(const std::vector<double>& v) {
  double sum = 0.0;
  for (double x : v) sum += x;
  return sum / double(v.size());
}

std::vector<int64_t> all_neurons(int64_t F) { return query_neurons(F, F); }

double one_way(const NeuronSet& a, const NeuronSet& b, int64_t max_neurons) {
  return mean(best_cosines(a, b, query_neurons(a.F, max_neurons), false).best_row);
}

double symmetric(const NeuronSet& a, const NeuronSet& b, int64_t max_neurons) {
  if (a.F <= max_neurons && b.F <= max_neurons) {  // exact both ways: one pass gives row and column maxima
    const BestCosines best = best_cosines(a, b, all_neurons(a.F), true);
    return (mean(best.best_row) + mean(best.best_col)) / 2.0;
  }
  return (one_way(a, b, max_neurons) + one_way(b, a, max_neurons)) / 2.0;
}

std::vector<NeuronSet> neuron_sets(const std::vector<FfnView>& ffns) {
  std::vector<NeuronSet> sets;
  sets.reserve(ffns.size());
  for (const FfnView& f : ffns) sets.push_back(neuron_set(f));
  return sets;
}

void check_max_neurons(int64_t max_neurons) {
  UPCYCLE_CHECK(max_neurons >= 1, "matched similarity: max_neurons must be at least 1");
}

}  // namespace

double dot_product(const WeightPieces& a, const WeightPieces& b) {
  UPCYCLE_CHECK(a.size() == b.size(), "dot_product: piece counts differ");
  double sum = 0.0;
  for (size_t p = 0; p < a.size(); ++p) {
    UPCYCLE_CHECK(a[p].size() == b[p].size(), "dot_product: piece sizes differ");
    const float* x = a[p].data();
    const float* y = b[p].data();
    double s = 0.0;
    for (size_t i = 0; i < a[p].size(); ++i) s += double(x[i]) * double(y[i]);
    sum += s;
  }
  return sum;
}

double cosine_similarity(const WeightPieces& a, const WeightPieces& b) {
  return cosine_from(dot_product(a, b), dot_product(a, a), dot_product(b, b));
}

double cosine_similarity(std::span<const float> a, std::span<const float> b) {
  return cosine_similarity(WeightPieces{a}, WeightPieces{b});
}

std::vector<std::vector<double>> similarity_matrix_EE(const std::vector<WeightPieces>& experts) {
  const std::ptrdiff_t E = std::ptrdiff_t(experts.size());
  std::vector<double> norm2_E(static_cast<size_t>(E));
#pragma omp parallel for schedule(dynamic)
  for (std::ptrdiff_t e = 0; e < E; ++e) norm2_E[size_t(e)] = dot_product(experts[size_t(e)], experts[size_t(e)]);
  std::vector<std::vector<double>> m(static_cast<size_t>(E), std::vector<double>(static_cast<size_t>(E), 0.0));
  const std::ptrdiff_t pairs = E * E;
#pragma omp parallel for schedule(dynamic)
  for (std::ptrdiff_t p = 0; p < pairs; ++p) {
    const size_t i = size_t(p / E), j = size_t(p % E);
    if (j < i) continue;  // the lower triangle mirrors the upper one
    const double dot = i == j ? norm2_E[i] : dot_product(experts[i], experts[j]);
    m[i][j] = m[j][i] = cosine_from(dot, norm2_E[i], norm2_E[j]);
  }
  return m;
}

std::optional<double> mean_off_diagonal(const std::vector<std::vector<double>>& matrix_EE) {
  const size_t E = matrix_EE.size();
  if (E < 2) return std::nullopt;
  double sum = 0.0;
  for (size_t i = 0; i < E; ++i)
    for (size_t j = 0; j < E; ++j)
      if (i != j) sum += matrix_EE[i][j];
  return sum / double(E * (E - 1));
}

std::vector<double> similarity_to(const std::vector<WeightPieces>& experts, const WeightPieces& reference) {
  const double norm2_ref = dot_product(reference, reference);
  std::vector<double> out(experts.size());
  const std::ptrdiff_t E = std::ptrdiff_t(experts.size());
#pragma omp parallel for schedule(dynamic)
  for (std::ptrdiff_t e = 0; e < E; ++e) {
    const WeightPieces& x = experts[size_t(e)];
    out[size_t(e)] = cosine_from(dot_product(x, reference), dot_product(x, x), norm2_ref);
  }
  return out;
}

std::vector<int64_t> query_neurons(int64_t F, int64_t max_neurons) {
  check_max_neurons(max_neurons);
  const int64_t n = std::min(F, max_neurons);
  std::vector<int64_t> rows(size_t(std::max<int64_t>(n, 0)));
  // k·F/n is exact in int64 for any realistic F (≤ 2^31) and gives distinct, evenly spaced indices.
  for (int64_t k = 0; k < n; ++k) rows[size_t(k)] = k * F / n;  // = k when nothing is sampled
  return rows;
}

double matched_similarity_one_way(const FfnView& a, const FfnView& b, int64_t max_neurons) {
  check_max_neurons(max_neurons);
  return one_way(neuron_set(a), neuron_set(b), max_neurons);
}

double matched_similarity(const FfnView& a, const FfnView& b, int64_t max_neurons) {
  check_max_neurons(max_neurons);
  return symmetric(neuron_set(a), neuron_set(b), max_neurons);
}

std::vector<std::vector<double>> matched_similarity_matrix_EE(const std::vector<FfnView>& experts,
                                                              int64_t max_neurons) {
  check_max_neurons(max_neurons);
  const std::vector<NeuronSet> sets = neuron_sets(experts);
  const size_t E = sets.size();
  std::vector<std::vector<double>> m(E, std::vector<double>(E, 0.0));
  for (size_t i = 0; i < E; ++i) {
    // Diagonal without the search: every neuron finds itself (cos 1), zero-norm neurons give 0.
    double nonzero = 0.0;
    for (double n2 : sets[i].norm2_F) nonzero += n2 > 0.0 ? 1.0 : 0.0;
    m[i][i] = nonzero / double(sets[i].F);
    for (size_t j = i + 1; j < E; ++j) m[i][j] = m[j][i] = symmetric(sets[i], sets[j], max_neurons);
  }
  return m;
}

std::vector<double> matched_similarity_to(const std::vector<FfnView>& experts, const FfnView& reference,
                                          int64_t max_neurons) {
  check_max_neurons(max_neurons);
  const NeuronSet ref = neuron_set(reference);
  std::vector<double> out;
  for (const FfnView& e : experts) {
    const NeuronSet x = neuron_set(e);
    out.push_back(x.F == ref.F ? symmetric(x, ref, max_neurons) : one_way(x, ref, max_neurons));
  }
  return out;
}

}  // namespace upcycle::analysis
