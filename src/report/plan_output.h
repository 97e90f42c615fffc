// How `upcycle plan` shows an UpcyclingPlan (upcycling_plan.h): the terminal text (each law with its
// parameters ± σ and fit residual, notes, then one line per finding) and the JSON record of
// `--json FILE` (format "upcycle-plan", docs/study.md). Non-goals: plotting (html_report.cpp).
#pragma once

#include <string>

#include "core/json.h"
#include "report/upcycling_plan.h"

namespace upcycle::report {

std::string render_plan_text(const UpcyclingPlan& plan);
Json plan_json(const UpcyclingPlan& plan);

}  // namespace upcycle::report
