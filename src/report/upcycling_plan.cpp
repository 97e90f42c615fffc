// The fits and crossovers of upcycling_plan.h. Points are the mean validation loss over domains at
// every evaluation of every run (each seed's run separately, so seeds add points, not averages).
// Points at D2 = 0 (the evaluation before the first upcycled step) are left out: the law diverges
// there, and that point is the dense model's loss, not an upcycled one.
#include "report/upcycling_plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <set>

#include "core/error.h"

namespace upcycle::report {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The runs holding a variant's points: its seed runs, or itself.
std::vector<const Variant*> runs_of(const Variant& v) {
  std::vector<const Variant*> out;
  if (v.seeded()) {
    for (const Variant& s : v.seed_runs)
      if (s.started) out.push_back(&s);
  } else if (v.started) {
    out.push_back(&v);
  }
  return out;
}

// The `upcycle convert` flags of a variant (its first convert command from the first `--`, without
// --seed): variants with equal flags are one recipe, whatever dense checkpoint they start from.
std::optional<std::string> convert_flags(const Variant& v) {
  for (const std::string& c : v.commands) {
    if (!c.starts_with("upcycle convert ")) continue;
    const size_t dashes = c.find(" --");
    std::string flags = dashes == std::string::npos ? "" : c.substr(dashes);
    if (const size_t s = flags.find(" --seed "); s != std::string::npos) {
      const size_t end = flags.find(' ', s + 8);
      flags.erase(s, end == std::string::npos ? std::string::npos : end - s);
    }
    return flags;
  }
  return std::nullopt;
}

// Starts for a law with power features [1, −ln x_1, …]: exponents from `exponents`, E at fractions of
// the smallest loss, ln A so that the power term is L_med − E at the median point.
std::vector<std::vector<double>> starts_for(const std::vector<std::vector<double>>& phi, const std::vector<double>& loss,
                                            const std::vector<std::vector<double>>& exponent_sets) {
  std::vector<double> sorted = loss;
  std::sort(sorted.begin(), sorted.end());
  const double l_min = sorted.front(), l_med = sorted[sorted.size() / 2];
  std::vector<double> mid(phi[0].size(), 0.0);
  for (size_t k = 0; k < mid.size(); ++k) {
    std::vector<double> col;
    for (const auto& row : phi) col.push_back(row[k]);
    std::nth_element(col.begin(), col.begin() + long(col.size() / 2), col.end());
    mid[k] = col[col.size() / 2];
  }
  std::vector<std::vector<double>> starts;
  for (const auto& exps : exponent_sets)
    for (double frac : {0.2, 0.6, 0.9}) {
      const double e = frac * l_min;
      std::vector<double> theta{0.0};
      double u = 0;
      for (size_t k = 0; k < exps.size(); ++k) {
        theta.push_back(exps[k]);
        u += exps[k] * mid[k + 1];
      }
      theta[0] = std::log(std::max(l_med - e, 1e-6 * l_med)) - u;
      theta.push_back(std::log(e));
      starts.push_back(std::move(theta));
    }
  return starts;
}

// A, the exponents, E from theta (ln A, exponents…, ln E), σ by the delta method for A and E.
std::vector<NamedValue> named(const ScalingFit& f, const std::vector<std::string>& exponent_names) {
  std::vector<NamedValue> out;
  const double a = std::exp(f.theta.front()), e = std::exp(f.theta.back());
  out.push_back({"A", a, a * f.sigma(0)});
  for (size_t k = 0; k < exponent_names.size(); ++k) out.push_back({exponent_names[k], f.theta[k + 1], f.sigma(k + 1)});
  out.push_back({"E", e, e * f.sigma(f.theta.size() - 1)});
  return out;
}

// L = A·C^−a + E on (C, L) points; nullopt (with a note) when there are too few.
std::optional<LawFit> fit_baseline(const std::string& what, const std::vector<std::string>& variants,
                                   const std::vector<std::pair<double, double>>& c_loss, double dense_sunk,
                                   std::vector<std::string>& notes) {
  if (c_loss.size() < 4) {
    notes.push_back(what + ": " + std::to_string(c_loss.size()) + " evaluated points, a power law needs at least 4; not compared");
    return std::nullopt;
  }
  LawFit law{what, "L(C) = A·C^-a + E, C = the model's total training FLOPs", variants, {}, {}, 0, 0};
  std::vector<std::vector<double>> phi;
  std::vector<double> loss;
  law.x_min = std::numeric_limits<double>::infinity();
  law.x_max = -law.x_min;
  for (const auto& [c, l] : c_loss) {
    phi.push_back({1.0, -std::log(c)});
    loss.push_back(l);
    law.x_min = std::min(law.x_min, c - dense_sunk);
    law.x_max = std::max(law.x_max, c - dense_sunk);
  }
  law.fit = fit_scaling_law(phi, loss, starts_for(phi, loss, {{0.05}, {0.2}, {0.5}, {1.0}}));
  law.params = named(law.fit, {"a"});
  return law;
}

const Variant* find_required(const ReportData& d, const std::string& name, const std::string& flag) {
  const Variant* v = d.find(name);
  if (v == nullptr)
    throw Error("the study has no variant '" + name + "' (choose one with " + flag + ")", d.sources.empty() ? "" : d.sources[0]);
  return v;
}

std::string format_g(double v) {
  if (!std::isfinite(v)) return "n/a";
  char b[32];
  std::snprintf(b, sizeof b, "%.3g", v);
  return b;
}

void fit_upcycled(UpcyclingPlan& p, const ReportData& d, const Variant& recipe, double tokens_per_dense_flop) {
  const std::optional<std::string> flags = convert_flags(recipe);
  if (!recipe.is_moe() || !flags || !(recipe.sunk_flops > 0))
    throw Error("variant '" + recipe.name + "' is not an MoE converted from the dense model (choose one with --recipe)",
                d.sources.empty() ? "" : d.sources[0]);
  std::vector<const Variant*> group{&recipe};
  for (const Variant& v : d.variants)
    if (&v != &recipe && v.is_moe() && v.sunk_flops > 0 && convert_flags(v) == flags) group.push_back(&v);
  struct Point { double d1, d2, loss; };
  std::vector<Point> pts;
  std::set<double> d1s;
  p.upcycled.x_min = std::numeric_limits<double>::infinity();
  p.upcycled.x_max = -p.upcycled.x_min;
  for (const Variant* v : group) {
    const double d1 = v->sunk_flops * tokens_per_dense_flop;
    size_t before = pts.size();
    for (const Variant* run : runs_of(*v))
      for (const LossPoint& lp : run->mean_loss) {
        if (!(lp.tokens > 0)) continue;
        pts.push_back({d1, lp.tokens, lp.loss});
        if (v == &recipe) {
          p.upcycled.x_min = std::min(p.upcycled.x_min, v->sunk_flops + lp.flops - d.dense_sunk_flops);
          p.upcycled.x_max = std::max(p.upcycled.x_max, v->sunk_flops + lp.flops - d.dense_sunk_flops);
        }
      }
    if (pts.size() > before) {
      d1s.insert(d1);
      p.upcycled.variants.push_back(v->name);
    }
  }
  p.d1 = recipe.sunk_flops * tokens_per_dense_flop;
  p.d1_values.assign(d1s.begin(), d1s.end());
  p.interaction = d1s.size() >= 2;
  const size_t params = p.interaction ? 5 : 3;
  if (!std::isfinite(p.upcycled.x_max) || pts.size() <= params + 1)
    throw Error("variant '" + recipe.name + "' has " + std::to_string(pts.size()) + " evaluated points after its start; the " +
                    (p.interaction ? "interaction law needs at least 7" : "law needs at least 5") + " (train it further)",
                d.sources.empty() ? "" : d.sources[0]);
  std::vector<std::vector<double>> phi;
  std::vector<double> loss;
  for (const Point& q : pts) {
    const double l1 = std::log(q.d1), l2 = std::log(q.d2);
    phi.push_back(p.interaction ? std::vector<double>{1.0, -l1, -l2, l1 * l2} : std::vector<double>{1.0, -l2});
    loss.push_back(q.loss);
  }
  p.upcycled.what = "upcycled";
  if (p.interaction) {
    p.upcycled.form = "L(D1, D2) = A·D1^-α1·D2^(-α2 + α3·ln D1) + E (Liew et al. 2025)";
    p.upcycled.fit = fit_scaling_law(phi, loss, starts_for(phi, loss, {{0.0, 0.1, 0.0}, {0.0, 0.4, 0.0}, {0.2, 0.1, 0.0}, {0.2, 0.4, 0.0}}));
    p.upcycled.params = named(p.upcycled.fit, {"α1", "α2", "α3"});
  } else {
    p.upcycled.form = "L(D2) = A·D2^-α2 + E at D1 = " + format_g(p.d1) + " " + p.d1_unit + " (the law at one dense start)";
    p.upcycled.fit = fit_scaling_law(phi, loss, starts_for(phi, loss, {{0.05}, {0.2}, {0.5}, {1.0}}));
    p.upcycled.params = named(p.upcycled.fit, {"α2"});
    p.notes.push_back("one dense start (D1 = " + format_g(p.d1) + " " + p.d1_unit +
                      "): the D1·D2 interaction is not identifiable, so the D2-only law was fitted. To measure it, keep earlier "
                      "pretraining checkpoints (dense.keep_steps) and add variants with the same `convert:` and `from: STEP`");
  }
}

// Upcycled − baseline loss at extra compute X: < 0 while upcycling is ahead.
double gap(const UpcyclingPlan& p, const LawFit& base, double x) { return p.upcycled_loss(x) - p.baseline_loss(base, x); }

// σ of the crossing X* of gap(X) = 0 through both fits' covariances (implicit function theorem); a
// parameter at its bound (ScalingFit::inert) is held there and adds nothing.
double crossover_sigma(const UpcyclingPlan& p, const LawFit& base, double x) {
  const double hx = 1e-5 * x;
  const double dgdx = (gap(p, base, x + hx) - gap(p, base, x - hx)) / (2 * hx);
  if (!(std::fabs(dgdx) > 0)) return kNaN;
  double var = 0;
  for (const bool upcycled_side : {true, false}) {
    UpcyclingPlan q = p;
    LawFit b = base;
    ScalingFit& f = upcycled_side ? q.upcycled.fit : b.fit;
    const ScalingFit& f0 = upcycled_side ? p.upcycled.fit : base.fit;
    const size_t n = f0.theta.size();
    std::vector<double> grad(n);
    for (size_t k = 0; k < n; ++k) {
      const double h = 1e-6 * std::max(1.0, std::fabs(f0.theta[k]));
      f.theta[k] = f0.theta[k] + h;
      const double up = gap(q, b, x);
      f.theta[k] = f0.theta[k] - h;
      const double down = gap(q, b, x);
      f.theta[k] = f0.theta[k];
      grad[k] = -(up - down) / (2 * h) / dgdx;
    }
    for (size_t r = 0; r < n; ++r)
      for (size_t c = 0; c < n; ++c)
        if (!f0.inert[r] && !f0.inert[c]) var += grad[r] * f0.covariance[r][c] * grad[c];  // a term at its bound: held there
  }
  return var >= 0 ? std::sqrt(var) : kNaN;
}

Crossover find_crossover(const UpcyclingPlan& p, const LawFit& base, const std::string& against) {
  Crossover c;
  c.against = against;
  c.variant = base.variants.empty() ? "" : base.variants.front();
  const double lo = std::max(p.upcycled.x_min, 1e-9 * p.dense_sunk_flops), hi = p.horizon_flops;
  const bool ahead = gap(p, base, lo) < 0;
  c.kind = ahead ? CrossoverKind::kAlwaysAhead : CrossoverKind::kNeverAhead;
  constexpr int kGrid = 400;
  double prev = lo;
  for (int i = 1; i <= kGrid; ++i) {
    const double x = lo * std::pow(hi / lo, double(i) / kGrid);
    if ((gap(p, base, x) < 0) == ahead) {
      prev = x;
      continue;
    }
    double a = prev, b = x;  // bisection in log X: the sign flips between a and b
    for (int it = 0; it < 80; ++it) {
      const double m = std::sqrt(a * b);
      ((gap(p, base, m) < 0) == ahead ? a : b) = m;
    }
    c.kind = ahead ? CrossoverKind::kStopsBeating : CrossoverKind::kOvertakes;
    c.extra_flops = std::sqrt(a * b);
    c.sigma = crossover_sigma(p, base, c.extra_flops);
    c.extrapolated = c.extra_flops > std::max(p.upcycled.x_max, base.x_max);
    return c;
  }
  return c;
}

std::string percent(double flops, double sunk) {
  char b[48];
  std::snprintf(b, sizeof b, "%+.0f %%", 100 * flops / sunk);
  return b;
}

}  // namespace

double UpcyclingPlan::upcycled_loss(double extra_flops) const {
  const double d2 = extra_flops / upcycled_flops_per_token;
  const std::vector<double> phi = interaction ? std::vector<double>{1.0, -std::log(d1), -std::log(d2), std::log(d1) * std::log(d2)}
                                              : std::vector<double>{1.0, -std::log(d2)};
  return std::exp(scaling_log_predict(upcycled.fit.theta, phi));
}

double UpcyclingPlan::baseline_loss(const LawFit& law, double extra_flops) const {
  return std::exp(scaling_log_predict(law.fit.theta, {1.0, -std::log(dense_sunk_flops + extra_flops)}));
}

UpcyclingPlan fit_upcycling_plan(const ReportData& d, const PlanOptions& o) {
  const std::string where = d.sources.empty() ? "" : d.sources[0];
  if (d.x_axis != XAxis::kExtraComputePercent) throw Error("`upcycle plan` needs a study directory (study.json), not run directories", where);
  UpcyclingPlan p;
  p.study = d.name;
  p.dense_sunk_flops = d.dense_sunk_flops;
  p.d1_unit = d.dense_sunk_tokens > 0 ? "tokens" : "dense FLOPs";
  const double tokens_per_dense_flop = d.dense_sunk_tokens > 0 ? d.dense_sunk_tokens / d.dense_sunk_flops : 1.0;
  const Variant& recipe = *find_required(d, o.recipe, "--recipe");
  p.upcycled_flops_per_token = recipe.train_flops_per_token > 0 ? recipe.train_flops_per_token
                                                                : recipe.tokens_done > 0 ? recipe.flops_done / recipe.tokens_done : 0;
  if (!(p.upcycled_flops_per_token > 0)) throw Error("variant '" + recipe.name + "' has no train_flops_per_token", where);
  fit_upcycled(p, d, recipe, tokens_per_dense_flop);

  double budget = 0;
  for (const Variant& v : d.variants) budget = std::max(budget, v.budget_flops);
  if (!(budget > 0)) budget = std::max(p.upcycled.x_max, d.dense_sunk_flops * std::max(d.extra_compute, 1e-3));
  p.horizon_flops = 10 * budget;

  // From scratch: the named variant, or the only MoE that uses no sunk cost.
  const Variant* scratch = nullptr;
  if (!o.scratch.empty()) {
    scratch = find_required(d, o.scratch, "--scratch");
  } else {
    std::vector<const Variant*> found;
    for (const Variant& v : d.variants)
      if (v.is_moe() && v.sunk_flops == 0) found.push_back(&v);
    if (found.size() == 1) scratch = found[0];
    else if (found.empty()) p.notes.push_back("no MoE-from-scratch variant (convert: {from-scratch: true}): not compared");
    else p.notes.push_back("several MoE-from-scratch variants: choose one with --scratch; not compared");
  }
  if (scratch != nullptr) {
    std::vector<std::pair<double, double>> pts;
    for (const Variant* run : runs_of(*scratch))
      for (const LossPoint& lp : run->mean_loss)
        if (scratch->sunk_flops + lp.flops > 0) pts.push_back({scratch->sunk_flops + lp.flops, lp.loss});
    p.scratch = fit_baseline("from scratch", {scratch->name}, pts, d.dense_sunk_flops, p.notes);
  }

  // Dense: the pretraining run (C = its FLOPs) and the continuation (C = sunk + its FLOPs), one lineage.
  const Variant* dense = d.find(o.dense);
  if (dense == nullptr) {
    p.notes.push_back("no variant '" + o.dense + "' (dense continuation, choose one with --dense): not compared");
  } else {
    std::vector<std::pair<double, double>> pts;
    std::vector<std::string> names{dense->name};
    if (d.dense_pretrain) {
      names.push_back(kDensePretrainName);
      for (const LossPoint& lp : d.dense_pretrain->mean_loss)
        if (lp.flops > 0) pts.push_back({lp.flops, lp.loss});
    }
    for (const Variant* run : runs_of(*dense))
      for (const LossPoint& lp : run->mean_loss) pts.push_back({dense->sunk_flops + lp.flops, lp.loss});
    p.dense = fit_baseline("dense", names, pts, d.dense_sunk_flops, p.notes);
  }
  for (const LawFit* law : {&p.upcycled, p.scratch ? &*p.scratch : nullptr, p.dense ? &*p.dense : nullptr})
    if (law != nullptr && law->fit.inert.back())
      p.notes.push_back(law->what + ": E went to 0 (the curve shows no floor at this scale), so this law keeps falling as a "
                        "pure power law and its crossovers rest on the exponents alone");
  if (p.scratch) p.crossovers.push_back(find_crossover(p, *p.scratch, "from scratch"));
  if (p.dense) p.crossovers.push_back(find_crossover(p, *p.dense, "dense continuation"));
  return p;
}

std::vector<std::string> plan_findings(const UpcyclingPlan& p) {
  std::vector<std::string> out;
  const std::string who = "upcycling (" + p.upcycled.variants.front() + ")";
  const std::string horizon = "10× the largest budget (" + percent(p.horizon_flops, p.dense_sunk_flops) + ")";
  for (const Crossover& c : p.crossovers) {
    const std::string other = c.against + " (" + c.variant + ")";
    const std::string at = format_g(c.extra_flops) + " ± " + format_g(c.sigma) + " FLOPs of extra compute (" +
                           percent(c.extra_flops, p.dense_sunk_flops) + " ± " +
                           format_g(100 * c.sigma / p.dense_sunk_flops) + " % of the dense pretraining)" +
                           (c.extrapolated ? ", extrapolated beyond the data" : ", within the data");
    switch (c.kind) {
      case CrossoverKind::kStopsBeating: out.push_back(who + " stops beating " + other + " at " + at); break;
      case CrossoverKind::kOvertakes: out.push_back(who + " is behind " + other + " at first and overtakes it at " + at); break;
      case CrossoverKind::kAlwaysAhead: out.push_back(who + " stays ahead of " + other + ": no crossover up to " + horizon); break;
      case CrossoverKind::kNeverAhead: out.push_back(who + " never gets ahead of " + other + " up to " + horizon); break;
    }
  }
  if (p.interaction) {
    const NamedValue& a3 = p.upcycled.params[3];
    out.push_back("interaction α3 = " + format_g(a3.value) + " ± " + format_g(a3.sigma) + ": each doubling of the dense " +
                  "pretraining changes the D2 exponent by −α3·ln 2 = " + format_g(-a3.value * std::log(2.0)) +
                  (a3.value > 0 ? " (upcycling a longer-trained model gains less per token)" : ""));
  }
  return out;
}

}  // namespace upcycle::report
