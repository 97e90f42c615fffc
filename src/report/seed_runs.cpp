// See seed_runs.h.
#include "report/seed_runs.h"

#include <algorithm>

namespace upcycle::report {
namespace {

template <class Point>
const Point* at_step(const std::vector<Point>& curve, int64_t step) {
  auto it = std::find_if(curve.begin(), curve.end(), [&](const Point& p) { return p.step == step; });
  return it == curve.end() ? nullptr : &*it;
}

// The mean loss of the curves at the steps all of them have. FLOPs, x and tokens are the first curve's:
// every seed of a variant counts the same FLOPs per step bit for bit, and an averaged copy could miss
// a seed's own last point by an ulp (loss_at_flops would then leave that seed out).
std::vector<LossPoint> mean_curve(const std::vector<const std::vector<LossPoint>*>& curves) {
  std::vector<LossPoint> out;
  if (curves.empty()) return out;
  for (const LossPoint& p : *curves[0]) {
    double sum = 0;
    size_t n = 0;
    for (const auto* c : curves)
      if (const LossPoint* q = at_step(*c, p.step)) sum += q->loss, ++n;
    if (n == curves.size()) out.push_back({p.step, p.flops, p.x, sum / double(n), p.tokens});
  }
  return out;
}

// Analysis summaries at the steps every seed run with analyses has, each metric the mean over the seeds
// that report it (permutation-invariant scalars, unlike the per-expert loads).
std::vector<AnalysisPoint> mean_analysis(const std::vector<const Variant*>& runs) {
  std::vector<const std::vector<AnalysisPoint>*> curves;
  for (const Variant* r : runs)
    if (!r->analysis.empty()) curves.push_back(&r->analysis);
  std::vector<AnalysisPoint> out;
  if (curves.empty()) return out;
  using Field = std::optional<double> AnalysisPoint::*;
  const Field fields[] = {&AnalysisPoint::expert_similarity_mean, &AnalysisPoint::dense_similarity_mean,
                          &AnalysisPoint::domain_specialization};
  for (const AnalysisPoint& p : *curves[0]) {
    std::vector<const AnalysisPoint*> same;
    for (const auto* c : curves)
      if (const AnalysisPoint* q = at_step(*c, p.step)) same.push_back(q);
    if (same.size() != curves.size()) continue;
    AnalysisPoint m{p.step, p.x, {}, {}, {}};
    for (Field f : fields) {
      double sum = 0;
      size_t n = 0;
      for (const AnalysisPoint* q : same)
        if (q->*f) sum += *(q->*f), ++n;
      if (n > 0) m.*f = sum / double(n);
    }
    out.push_back(m);
  }
  return out;
}

}  // namespace

void aggregate_seed_runs(Variant& v) {
  std::vector<const Variant*> started;
  for (const Variant& s : v.seed_runs)
    if (s.started) started.push_back(&s);
  v.started = !started.empty();
  v.mean_loss.clear();
  v.domain_loss.clear();
  v.domain_order.clear();
  v.analysis.clear();
  v.final_load.clear();
  v.routing.reset();
  if (!v.started) return;
  v.steps_done = started[0]->steps_done, v.tokens_done = started[0]->tokens_done, v.flops_done = started[0]->flops_done;
  for (const Variant* s : started) {
    v.steps_done = std::min(v.steps_done, s->steps_done);
    v.tokens_done = std::min(v.tokens_done, s->tokens_done);
    v.flops_done = std::min(v.flops_done, s->flops_done);
  }
  std::vector<const std::vector<LossPoint>*> curves;
  for (const Variant* s : started) curves.push_back(&s->mean_loss);
  v.mean_loss = mean_curve(curves);
  for (const std::string& domain : started[0]->domain_order) {
    curves.clear();
    for (const Variant* s : started)
      if (auto it = s->domain_loss.find(domain); it != s->domain_loss.end()) curves.push_back(&it->second);
    if (curves.size() != started.size()) continue;
    if (std::vector<LossPoint> mean = mean_curve(curves); !mean.empty()) {
      v.domain_loss[domain] = std::move(mean);
      v.domain_order.push_back(domain);
    }
  }
  v.analysis = mean_analysis(started);
  v.final_load = started[0]->final_load;
  v.routing = started[0]->routing;
}

std::map<int64_t, double> seed_losses_at_step(const Variant& v, int64_t step, const std::string& domain) {
  std::map<int64_t, double> out;
  for (const Variant& s : v.seed_runs) {
    const std::vector<LossPoint>* curve = s.loss_curve(domain);
    if (curve == nullptr) continue;
    if (const LossPoint* p = at_step(*curve, step); p != nullptr && s.seed) out[*s.seed] = p->loss;
  }
  return out;
}

std::map<int64_t, double> seed_losses_at_flops(const Variant& v, double flops) {
  std::map<int64_t, double> out;
  for (const Variant& s : v.seed_runs)
    if (auto loss = loss_at_flops(s.mean_loss, flops); loss && s.seed) out[*s.seed] = *loss;
  return out;
}

std::optional<Spread> spread(const std::map<int64_t, double>& by_seed) {
  if (by_seed.empty()) return std::nullopt;
  Spread s{0, by_seed.begin()->second, by_seed.begin()->second, by_seed.size()};
  for (const auto& [seed, value] : by_seed) {
    s.mean += value;
    s.min = std::min(s.min, value);
    s.max = std::max(s.max, value);
  }
  s.mean /= double(s.n);
  return s;
}

std::map<int64_t, double> paired_differences(const std::map<int64_t, double>& a, const std::map<int64_t, double>& b) {
  std::map<int64_t, double> out;
  for (const auto& [seed, value] : a)
    if (auto it = b.find(seed); it != b.end()) out[seed] = value - it->second;
  return out;
}

}  // namespace upcycle::report
