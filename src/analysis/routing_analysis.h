// Routing of one MoE layer across several data domains (docs/study.md): expert loads as fractions of
// kept assignments (Σ = 1), overall and per domain, and domain specialisation = the mean over domains
// of the total-variation distance TV(p, q) = ½ Σ_e |p_e − q_e| between the domain's load and the mean
// of the domain loads: 0 when every domain uses the experts alike, at most 1 − 1/D (D domains on
// disjoint experts; 0.5 for two).
// Pure aggregation over evaluate_windows' per-domain counts, so it is testable on hand-made numbers.
// Shape legend: E experts, D domains (in this file only; elsewhere D is the model width).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "model/evaluate.h"

namespace upcycle::analysis {

// Fractions of Σ counts (all zeros when nothing was kept).
std::vector<double> load_fractions(std::span<const int64_t> counts_E);
double total_variation(std::span<const double> p_E, std::span<const double> q_E);
// Mean over domains of TV(load_d, mean_d load_d); 0 for fewer than two domains.
double domain_specialization(const std::vector<std::vector<double>>& loads_DE);

// One domain's routing statistics for one layer, with the predicted tokens they were measured on
// (the weights for averaging entropy, top-1 probability and aux loss across domains).
struct DomainRouting {
  std::string domain;
  model::LayerRoutingSummary summary;
  int64_t tokens = 0;
};

struct LayerRoutingAnalysis {
  int64_t layer = 0;
  std::vector<double> load_E;  // Σ counts over all domains, as fractions
  double dropped = 0.0;        // dropped / assignments over all domains
  double entropy = 0.0, top1 = 0.0, aux = 0.0;  // token-weighted means over domains
  std::vector<std::pair<std::string, std::vector<double>>> domain_load;  // in domain order
  double domain_specialization = 0.0;
};

// `domains` non-empty, all for the same layer and expert count (UPCYCLE_CHECK).
LayerRoutingAnalysis aggregate_layer_routing(const std::vector<DomainRouting>& domains);

}  // namespace upcycle::analysis
