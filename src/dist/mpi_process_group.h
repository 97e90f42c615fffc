// The MPI implementation of ProcessGroup for host buffers (see process_group.h). Only this file pair
// includes <mpi.h>. Every collective is point-to-point through rank 0: reductions send each chunk of
// ≤ kChunk elements to rank 0, which adds the ranks' chunks in rank order and sends the sum back — a
// fixed order at a fixed world size, unlike MPI_Allreduce, whose order Open MPI picks per message size
// and algorithm. Rank 0's link carries N−1 chunks in and N−1 out: fine at the 2–8 ranks of data
// parallel on CPUs; a ring or tree of the same fixed order is the next step when it becomes the bottleneck.
// Bounded waits (--dist-timeout): every message is nonblocking and polled against a deadline, and each
// wait knows the rank at its other end, so the rank that sent nothing is the one named. Rank 0, which
// waits on everyone, announces itself at the start of each collective; the others then give it a grace
// period more than the limit, so when rank 0 is alive it is rank 0 that names the late rank.
#pragma once

#include <memory>

#include "dist/launcher.h"
#include "dist/process_group.h"

namespace upcycle::dist {

// MPI_Init_thread(FUNNELED) (only the main thread calls MPI); Error when the launcher's rank or size
// disagree with MPI's.
std::unique_ptr<ProcessGroup> make_mpi_process_group(const LauncherInfo& launcher);

}  // namespace upcycle::dist
