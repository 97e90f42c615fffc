// The MPI implementation of ProcessGroup for host buffers (see process_group.h). Only this file pair
// includes <mpi.h>. Reductions: each chunk of ≤ kChunk elements is sent to rank 0, which adds the ranks'
// chunks in rank order, then broadcast back — a fixed order at a fixed world size, unlike
// MPI_Allreduce, whose order Open MPI picks per message size and algorithm. Rank 0 receives N−1
// chunks per chunk: fine at the 2–8 ranks of data parallel on CPUs; a ring or tree of the same fixed
// order is the next step when rank 0's link becomes the bottleneck.
#pragma once

#include <memory>

#include "dist/launcher.h"
#include "dist/process_group.h"

namespace upcycle::dist {

// MPI_Init_thread(FUNNELED) (only the main thread calls MPI); Error when the launcher's rank or size
// disagree with MPI's.
std::unique_ptr<ProcessGroup> make_mpi_process_group(const LauncherInfo& launcher);

}  // namespace upcycle::dist
