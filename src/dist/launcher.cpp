// Launcher environment → LauncherInfo (see launcher.h). Open MPI's variables win over Slurm's: srun
// may start mpirun, which then sets its own for each process it starts.
#include "dist/launcher.h"

#include <cstdlib>

namespace upcycle::dist {
namespace {

std::optional<int> env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (*end != '\0' || x < 0 || x > 1'000'000) return std::nullopt;
  return int(x);
}

}  // namespace

LauncherInfo launcher_from_environment() {
  if (auto size = env_int("OMPI_COMM_WORLD_SIZE"))
    return {"mpirun", env_int("OMPI_COMM_WORLD_RANK"), size, env_int("OMPI_COMM_WORLD_LOCAL_RANK")};
  // Slurm: a batch script's own shell has SLURM_PROCID and SLURM_NTASKS too; SLURM_STEP_NUM_TASKS (set by
  // srun for the tasks of a job step) marks a task srun started.
  if (auto size = env_int("SLURM_STEP_NUM_TASKS"))
    return {"srun", env_int("SLURM_PROCID"), size, env_int("SLURM_LOCALID")};
  if (auto size = env_int("PMI_SIZE")) return {"pmi", env_int("PMI_RANK"), size, env_int("MPI_LOCALRANKID")};
  if (auto rank = env_int("PMIX_RANK")) return {"pmix", rank, std::nullopt, std::nullopt};
  return {};
}

}  // namespace upcycle::dist
