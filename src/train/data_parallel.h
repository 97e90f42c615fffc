// Data parallel over a dist::ProcessGroup (docs/distributed.md). Each of N ranks runs grad_accum
// micro-batches of the one global data stream: global micro-batch g = m·N + rank (m = 0…A−1), so
// rank r skips the windows of the ranks beside it and every rank's batcher keeps the same counters.
// After the micro-batches, the gradient sums, the loss sum and the MoE routing statistics are summed
// over the ranks in rank order (dist::ProcessGroup), so every rank holds the same bits and takes the
// same AdamW step: N ranks × A micro-batches equal one process × N·A micro-batches up to the order
// of the float additions of the gradient sum.
// Non-goals: overlapping the reduction with backward, gradient bucketing, expert parallel.
#pragma once

#include <cstddef>
#include <vector>

#include "backend/backend.h"
#include "dist/process_group.h"

namespace upcycle::train {

struct LayerStepStats;

// Sums `n` floats of backend memory over the group, in place; through a host copy when the backend's
// memory is not host-accessible. No-op for a single process.
void all_reduce_backend_sum(backend::Backend& backend, dist::ProcessGroup& group, float* data, size_t n);

// Sums one step's loss and MoE statistics (micro-batch sums, not yet means) over the group: expert
// counts, assignments and drops as integers, the rest as doubles.
void all_reduce_step_sums(dist::ProcessGroup& group, double& loss_sum, std::vector<LayerStepStats>& moe);

}  // namespace upcycle::train
