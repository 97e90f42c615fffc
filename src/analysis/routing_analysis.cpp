// Aggregation of per-domain routing counts into loads, TV distances and domain specialisation
// (routing_analysis.h). Counts are summed as integers and divided once, so loads sum to 1 exactly
// up to one rounding per entry.
#include "analysis/routing_analysis.h"

#include <cmath>

#include "core/error.h"

namespace upcycle::analysis {

std::vector<double> load_fractions(std::span<const int64_t> counts_E) {
  int64_t total = 0;
  for (int64_t n : counts_E) total += n;
  std::vector<double> out(counts_E.size(), 0.0);
  if (total > 0)
    for (size_t e = 0; e < counts_E.size(); ++e) out[e] = double(counts_E[e]) / double(total);
  return out;
}

double total_variation(std::span<const double> p_E, std::span<const double> q_E) {
  UPCYCLE_CHECK(p_E.size() == q_E.size(), "total_variation: sizes differ");
  double sum = 0.0;
  for (size_t e = 0; e < p_E.size(); ++e) sum += std::fabs(p_E[e] - q_E[e]);
  return 0.5 * sum;
}

double domain_specialization(const std::vector<std::vector<double>>& loads_DE) {
  if (loads_DE.size() < 2) return 0.0;
  const size_t D = loads_DE.size(), E = loads_DE[0].size();
  std::vector<double> mean_E(E, 0.0);
  for (const auto& load : loads_DE) {
    UPCYCLE_CHECK(load.size() == E, "domain_specialization: expert counts differ");
    for (size_t e = 0; e < E; ++e) mean_E[e] += load[e] / double(D);
  }
  double sum = 0.0;
  for (const auto& load : loads_DE) sum += total_variation(load, mean_E);
  return sum / double(D);
}

LayerRoutingAnalysis aggregate_layer_routing(const std::vector<DomainRouting>& domains) {
  UPCYCLE_CHECK(!domains.empty(), "aggregate_layer_routing: no domains");
  const size_t E = domains[0].summary.tokens_per_expert.size();
  LayerRoutingAnalysis out;
  out.layer = domains[0].summary.layer;
  std::vector<int64_t> counts_E(E, 0);
  int64_t assignments = 0, dropped = 0, tokens = 0;
  std::vector<std::vector<double>> loads_DE;
  for (const DomainRouting& d : domains) {
    const model::LayerRoutingSummary& s = d.summary;
    UPCYCLE_CHECK(s.layer == out.layer && s.tokens_per_expert.size() == E, "aggregate_layer_routing: layers differ");
    for (size_t e = 0; e < E; ++e) counts_E[e] += s.tokens_per_expert[e];
    assignments += s.assignments;
    dropped += s.dropped;
    tokens += d.tokens;
    out.entropy += s.router_entropy * double(d.tokens);
    out.top1 += s.top1_probability * double(d.tokens);
    out.aux += s.aux_loss * double(d.tokens);
    loads_DE.push_back(load_fractions(s.tokens_per_expert));
    out.domain_load.emplace_back(d.domain, loads_DE.back());
  }
  out.load_E = load_fractions(counts_E);
  out.dropped = assignments > 0 ? double(dropped) / double(assignments) : 0.0;
  if (tokens > 0) {
    out.entropy /= double(tokens);
    out.top1 /= double(tokens);
    out.aux /= double(tokens);
  }
  out.domain_specialization = domain_specialization(loads_DE);
  return out;
}

}  // namespace upcycle::analysis
