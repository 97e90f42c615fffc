// The report's computed finding (docs/study.md, "Header and finding"): which variant has the lowest
// mean validation loss at equal training compute, and by how much against dense-continuation (else
// the runner-up). When every evaluated run has finished the same budget (Variant::finished, equal
// budget_flops) it compares their final evaluations, the very numbers of the summary table, although
// their final FLOPs differ by up to a step; otherwise every curve is interpolated at the most training
// compute all evaluated runs have reached, and the sentence says so. With seeds it quotes the means
// over seeds (as the table does) with their min–max, and says whether the differences paired by seed
// all have the advantage's sign (it holds for every seed) or not (it is within the noise). Then, for
// each evaluated variant trained from scratch (sunk_flops 0) when the dense pretraining run is known,
// whether its final mean validation loss has caught up with the dense model's. Never fixed text.
#pragma once

#include <string>

#include "report/run_data.h"

namespace upcycle::report {

std::string finding_sentence(const ReportData& data);

}  // namespace upcycle::report
