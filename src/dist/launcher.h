// What the launcher (mpirun, srun, another PMI/PMIx launcher) says about this process, read from its
// environment before MPI is initialised: whether MPI is wanted at all, and the rank, world size and
// local rank when the launcher names them. Pure environment parsing: no MPI calls.
//   Open MPI mpirun: OMPI_COMM_WORLD_{RANK,SIZE,LOCAL_RANK}; Slurm srun: SLURM_{PROCID,STEP_NUM_TASKS,LOCALID};
//   PMI / PMIx launchers (MPICH hydra, PRRTE): PMI_{RANK,SIZE}, PMIX_RANK (size from MPI itself).
#pragma once

#include <optional>
#include <string>

namespace upcycle::dist {

struct LauncherInfo {
  std::string launcher;         // "mpirun", "srun", "pmi", "pmix"; empty: started directly
  std::optional<int> rank, size, local_rank;
  // MPI is initialised only for a launched job of more than one process (or of unknown size).
  bool wants_mpi() const { return !launcher.empty() && (!size || *size > 1); }
};

LauncherInfo launcher_from_environment();

}  // namespace upcycle::dist
