// The report's scaling-law section (svg id plot-plan): the study's upcycled, from-scratch and dense
// curves with the laws `upcycle plan` fits to them (upcycling_plan.h) drawn dashed past the data, the
// predicted crossovers as labelled vertical lines and the line where the data end ("extrapolated →").
// A study the laws cannot be fitted to gets a one-paragraph note saying why; run directories (no
// study) get nothing. Non-goals: per-domain fits.
#pragma once

#include <string>

#include "report/run_data.h"

namespace upcycle::report {

std::string plan_section(const ReportData& data);

}  // namespace upcycle::report
