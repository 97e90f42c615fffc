// The Dirichlet prior's flag syntax and the prior table handed to Backend::dirichlet_prior_loss
// (contract and sources in dirichlet_prior.h; the loss itself is the backend op).
#include "model/dirichlet_prior.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <sstream>

#include "core/error.h"

namespace upcycle::model {

std::vector<double> parse_dirichlet_prior(const std::string& text, int64_t num_experts, const std::string& flag) {
  std::vector<double> alpha;
  std::string s = text;
  std::replace(s.begin(), s.end(), ',', ' ');
  std::istringstream in(s);
  for (std::string word; in >> word;) {
    double v = 0;
    auto [ptr, ec] = std::from_chars(word.data(), word.data() + word.size(), v);
    if (ec != std::errc() || ptr != word.data() + word.size() || !(v > 0) || !std::isfinite(v))
      throw Error(flag + " " + text + ": each concentration α must be a positive number (got '" + word + "')");
    alpha.push_back(v);
  }
  if (alpha.empty()) throw Error(flag + ": expected α or α1,…,αE, got '" + text + "'");
  if (alpha.size() == 1) return std::vector<double>(size_t(num_experts), alpha[0]);
  if (int64_t(alpha.size()) != num_experts)
    throw Error(flag + " " + text + ": " + std::to_string(alpha.size()) + " concentrations for a model with " +
                std::to_string(num_experts) + " experts (give one α, or one per expert)");
  return alpha;
}

DirichletPriorTable dirichlet_prior_table(const std::vector<double>& alpha_E,
                                          const std::vector<std::vector<double>>& alpha_DE) {
  DirichletPriorTable table;
  if (alpha_DE.empty()) {
    table.alpha_PE = alpha_E;
    table.priors = alpha_E.empty() ? 0 : 1;
    return table;
  }
  std::vector<size_t> first_domain_of_prior;  // the domain whose α vector defines each prior
  for (const auto& alpha : alpha_DE) {
    size_t p = 0;
    while (p < first_domain_of_prior.size() && alpha_DE[first_domain_of_prior[p]] != alpha) ++p;
    if (p == first_domain_of_prior.size()) {
      first_domain_of_prior.push_back(size_t(&alpha - alpha_DE.data()));
      table.alpha_PE.insert(table.alpha_PE.end(), alpha.begin(), alpha.end());
    }
    table.prior_of_domain.push_back(int32_t(p));
  }
  table.priors = int64_t(first_domain_of_prior.size());
  return table;
}

}  // namespace upcycle::model
