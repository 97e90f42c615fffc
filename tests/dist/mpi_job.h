// A job of the built upcycle (or another program) under mpirun, for the dist tests: started in its own
// process group with stdout and stderr captured, waited for with a deadline (on expiry the whole group
// is killed and the result says so, so a hung job fails the test instead of CI). CI runs as root:
// Open MPI refuses that unless OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM) are set, which the job's environment does.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "support/test_support.h"

namespace upcycle::test {

// The environment variable holding the job's mpirun pid in each of its ranks (dist_test_support.h's rank_pid).
inline constexpr const char* kJobMarker = "UPCYCLE_TEST_MPI_JOB";

struct MpiResult {
  int exit_code = -1;
  bool timed_out = false;
  double seconds = 0;
  std::string output;  // stdout then stderr
};

class MpiJob {
 public:
  // mpirun -np N --bind-to none --oversubscribe MPIRUN_ARGS… PROGRAM ARGS…; `env` entries "NAME=value"
  // are added to the job's environment (mpirun hands its environment to the ranks).
  MpiJob(int np, const std::string& program, const std::vector<std::string>& args,
         const std::vector<std::string>& env = {}, const std::vector<std::string>& mpirun_args = {}) {
    start_ = std::chrono::steady_clock::now();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setpgid(0, 0);
      const int out = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int err = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(out, 1);
      ::dup2(err, 2);
      ::setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
      ::setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
      ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
      ::setenv(kJobMarker, std::to_string(::getpid()).c_str(), 1);  // every rank inherits it: rank_pid finds them
      for (const auto& e : env) ::putenv(::strdup(e.c_str()));
      std::vector<std::string> argv_s = {UPCYCLE_MPIEXEC, "-np", std::to_string(np), "--bind-to", "none",
                                         "--oversubscribe"};
      argv_s.insert(argv_s.end(), mpirun_args.begin(), mpirun_args.end());
      argv_s.push_back(program);
      argv_s.insert(argv_s.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (auto& a : argv_s) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::setpgid(pid_, pid_);
  }
  ~MpiJob() {
    if (!waited_) {
      ::kill(-pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  MpiJob(const MpiJob&) = delete;
  MpiJob& operator=(const MpiJob&) = delete;

  pid_t pid() const { return pid_; }

  MpiResult wait(double deadline_seconds = 120) {
    MpiResult r;
    int status = 0;
    const auto deadline = start_ + std::chrono::duration<double>(deadline_seconds);
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        r.timed_out = true;
        ::kill(-pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    waited_ = true;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.output = read_bytes(out_) + read_bytes(err_);
    return r;
  }

 private:
  ScratchDir capture_;
  std::filesystem::path out_ = capture_ / "stdout", err_ = capture_ / "stderr";
  pid_t pid_ = -1;
  bool waited_ = false;
  std::chrono::steady_clock::time_point start_;
};

// Runs a job to its end (see MpiJob).
inline MpiResult run_mpi(int np, const std::string& program, const std::vector<std::string>& args,
                         const std::vector<std::string>& env = {}, double deadline_seconds = 120,
                         const std::vector<std::string>& mpirun_args = {}) {
  return MpiJob(np, program, args, env, mpirun_args).wait(deadline_seconds);
}

}  // namespace upcycle::test
