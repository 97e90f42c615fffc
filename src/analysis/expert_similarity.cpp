// Cosines between expert weight vectors (expert_similarity.h): one fp64 dot product per pair, norms
// computed once, pairs spread over OpenMP threads (a real layer has E·(E−1)/2 pairs of 3·F·D values).
#include "analysis/expert_similarity.h"

#include <cmath>
#include <cstddef>

#include "core/error.h"

namespace upcycle::analysis {
namespace {

double cosine_from(double dot, double norm2_a, double norm2_b) {
  if (norm2_a <= 0.0 || norm2_b <= 0.0) return 0.0;
  return dot / (std::sqrt(norm2_a) * std::sqrt(norm2_b));
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

}  // namespace upcycle::analysis
