// dist::launcher_from_environment: which launcher started this process, and whether MPI is wanted,
// from hand-set environments (mpirun, srun inside a batch script, a batch script's own shell, PMI, none).
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <string>

#include "dist/launcher.h"

namespace upcycle {
namespace {

const char* const kVariables[] = {"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK",
                                  "SLURM_PROCID", "SLURM_NTASKS", "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID",
                                  "PMI_SIZE", "PMI_RANK", "MPI_LOCALRANKID", "PMIX_RANK"};

// Sets exactly `vars` among the launcher variables for the scope; restores the process's own after.
class Environment {
 public:
  explicit Environment(const std::map<std::string, std::string>& vars) {
    for (const char* name : kVariables) {
      if (const char* v = std::getenv(name)) saved_[name] = v;
      ::unsetenv(name);
    }
    for (const auto& [name, value] : vars) ::setenv(name.c_str(), value.c_str(), 1);
  }
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;
  ~Environment() {
    for (const char* name : kVariables) ::unsetenv(name);
    for (const auto& [name, value] : saved_) ::setenv(name.c_str(), value.c_str(), 1);
  }

 private:
  std::map<std::string, std::string> saved_;
};

TEST(LauncherEnv, MpirunNamesRankSizeAndLocalRank) {
  Environment env({{"OMPI_COMM_WORLD_SIZE", "4"}, {"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}});
  const dist::LauncherInfo l = dist::launcher_from_environment();
  EXPECT_EQ(l.launcher, "mpirun");
  EXPECT_EQ(l.rank, 3);
  EXPECT_EQ(l.size, 4);
  EXPECT_EQ(l.local_rank, 1);
  EXPECT_TRUE(l.wants_mpi());
}

TEST(LauncherEnv, SrunTaskButNotTheBatchScriptsOwnShell) {
  {
    Environment env({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "8"}});  // sbatch's shell: no job step
    EXPECT_EQ(dist::launcher_from_environment().launcher, "");
    EXPECT_FALSE(dist::launcher_from_environment().wants_mpi());
  }
  Environment env({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"}, {"SLURM_STEP_NUM_TASKS", "8"}, {"SLURM_LOCALID", "1"}});
  const dist::LauncherInfo l = dist::launcher_from_environment();
  EXPECT_EQ(l.launcher, "srun");
  EXPECT_EQ(l.rank, 5);
  EXPECT_EQ(l.size, 8);
  EXPECT_EQ(l.local_rank, 1);
  EXPECT_TRUE(l.wants_mpi());
}

TEST(LauncherEnv, OneProcessOrNoLauncherNeedsNoMpi) {
  {
    Environment env({{"OMPI_COMM_WORLD_SIZE", "1"}, {"OMPI_COMM_WORLD_RANK", "0"}});  // mpirun -np 1
    EXPECT_EQ(dist::launcher_from_environment().launcher, "mpirun");
    EXPECT_FALSE(dist::launcher_from_environment().wants_mpi());
  }
  {
    Environment env(std::map<std::string, std::string>{{"PMIX_RANK", "0"}});  // a PMIx launcher that names no size: MPI tells
    EXPECT_TRUE(dist::launcher_from_environment().wants_mpi());
  }
  Environment env(std::map<std::string, std::string>{{"OMPI_COMM_WORLD_SIZE", "two"}});  // not a number: ignored
  EXPECT_EQ(dist::launcher_from_environment().launcher, "");
  EXPECT_FALSE(dist::launcher_from_environment().wants_mpi());
}

}  // namespace
}  // namespace upcycle
