// See token_view.h.
#include "report/token_view.h"

#include <algorithm>
#include <cmath>

#include "report/summary_table.h"

namespace upcycle::report {
namespace {

// Differences this small print as ±0.0000 (format_delta): neither faster nor slower.
constexpr double kTie = 5e-5;

// variant − baseline at the most of `along` both curves reach (their last points' smaller value).
void compare_at(const std::vector<LossPoint>& v, const std::vector<LossPoint>& base, double LossPoint::*along,
                std::optional<double>& at, std::optional<double>& delta) {
  if (v.empty() || base.empty()) return;
  const double x = std::min(v.back().*along, base.back().*along);
  const auto loss = [&](const std::vector<LossPoint>& c) {
    return along == &LossPoint::tokens ? loss_at_tokens(c, x) : loss_at_flops(c, x);
  };
  const std::optional<double> a = loss(v), b = loss(base);
  if (!a || !b) return;
  at = x;
  delta = *a - *b;
}

// Both have trained the same whole budget: compared at their final evaluations, as the summary table
// and the finding do, although their final FLOPs differ by up to a step.
bool same_budget_finished(const Variant& v, const Variant& base) {
  return v.finished() && base.finished() && !v.mean_loss.empty() && !base.mean_loss.empty() && v.budget_flops > 0 &&
         std::fabs(v.budget_flops - base.budget_flops) <= 1e-9 * base.budget_flops;
}

std::string verdict(double delta, const char* better, const char* worse, const char* same) {
  return std::fabs(delta) < kTie ? same : delta < 0 ? better : worse;
}

}  // namespace

std::vector<TokenViewRow> token_view_rows(const ReportData& data) {
  std::vector<TokenViewRow> rows;
  const Variant* base = data.find(kBaselineVariant);
  if (base == nullptr) return rows;
  for (const Variant& v : data.variants) {
    if (!v.is_moe()) continue;
    TokenViewRow r;
    r.variant = v.name;
    if (base->train_flops_per_token > 0) r.cost_ratio = v.train_flops_per_token / base->train_flops_per_token;
    compare_at(v.mean_loss, base->mean_loss, &LossPoint::tokens, r.tokens, r.per_token_delta);
    if (same_budget_finished(v, *base)) {  // the summary table's Δ: final against final, at the budget
      r.flops = v.budget_flops;
      r.per_flop_delta = v.mean_loss.back().loss - base->mean_loss.back().loss;
    } else {
      compare_at(v.mean_loss, base->mean_loss, &LossPoint::flops, r.flops, r.per_flop_delta);
    }
    rows.push_back(std::move(r));
  }
  return rows;
}

std::string token_view_sentence(const TokenViewRow& r) {
  if (!r.per_token_delta || !r.per_flop_delta) return "";
  const std::string token = verdict(*r.per_token_delta, "learns faster per token", "learns slower per token",
                                    "learns as fast per token");
  const std::string flop = verdict(*r.per_flop_delta, "wins per FLOP", "loses per FLOP", "ties per FLOP");
  const auto sign = [](double d) { return std::fabs(d) < kTie ? 0 : d < 0 ? -1 : 1; };
  const bool opposite = sign(*r.per_token_delta) * sign(*r.per_flop_delta) < 0;
  std::string s = r.variant + " " + token + " (" + format_delta(*r.per_token_delta) + " at " + format_flops(*r.tokens) +
                  " tokens) " + (opposite ? "but " : "and ") + flop + " (" + format_delta(*r.per_flop_delta) + " at " +
                  format_flops(*r.flops) + " FLOPs)";
  if (r.cost_ratio > 0)
    s += ": each token costs " + format_number("%.2f", r.cost_ratio) + "× the FLOPs of a " + kBaselineVariant + " token";
  return s + ".";
}

std::string token_view_text(const ReportData& data) {
  std::string out;
  for (const TokenViewRow& r : token_view_rows(data))
    if (const std::string s = token_view_sentence(r); !s.empty()) out += (out.empty() ? "" : " ") + s;
  return out;
}

}  // namespace upcycle::report
