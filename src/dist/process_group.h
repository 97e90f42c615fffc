// A group of cooperating processes (ranks 0..size-1) and the few collectives training needs.
// Every reduction runs in a fixed order (rank 0 + rank 1 + … + rank N−1, element by element), so a run
// at a fixed world size is bitwise reproducible whatever the transport does; the result is then the
// same bits on every rank. Buffers are host memory: a caller holding backend memory stages it
// (train/data_parallel.h). Implementations: SingleProcessGroup (N = 1, no MPI calls, the default) and
// the MPI one (mpi_process_group.cpp), chosen by open_process_group() from the launcher's environment.
// Every wait on another rank can be bounded (set_wait_limit): a rank that sends nothing for that long
// (hung, stopped, stuck on a disk) ends the job with one line naming it instead of blocking it forever.
// Non-goals: NCCL (GPU buffers, issue 17), sub-communicators, non-blocking collectives.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace upcycle::dist {

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int local_rank() const = 0;  // rank among the processes of this machine
  virtual void barrier() = 0;
  // In place: data[i] = Σ_r data_r[i], summed in rank order, identical bits on every rank.
  virtual void all_reduce_sum(float* data, size_t n) = 0;
  virtual void all_reduce_sum(double* data, size_t n) = 0;
  virtual void all_reduce_sum(int64_t* data, size_t n) = 0;
  // Copies `bytes` at `data` from rank `root` to every rank.
  virtual void broadcast(void* data, size_t bytes, int root) = 0;
  // Every rank's `value`, indexed by rank (small counters: stop requests, step numbers).
  virtual std::vector<int64_t> all_gather(int64_t value) = 0;
  // Bounds each wait on another rank to `seconds` (0: wait forever, the default). When it runs out the
  // waiting rank prints `upcycle: error: rank R of N: rank P sent nothing for S s in <activity> …` and
  // ends the whole job (MPI_Abort), exit status 2.
  virtual void set_wait_limit(double seconds) = 0;
  // What the coming collectives are for, as that line names it ("the gradient reduction of step 17").
  virtual void set_activity(std::string what) = 0;
};

class SingleProcessGroup final : public ProcessGroup {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  void barrier() override {}
  void all_reduce_sum(float*, size_t) override {}
  void all_reduce_sum(double*, size_t) override {}
  void all_reduce_sum(int64_t*, size_t) override {}
  void broadcast(void*, size_t, int) override {}
  std::vector<int64_t> all_gather(int64_t value) override { return {value}; }
  void set_wait_limit(double) override {}
  void set_activity(std::string) override {}
};

// The process's one SingleProcessGroup (the default of everything that takes a group).
ProcessGroup& single_process_group();

// The group this process was launched into: MPI (MPI_Init_thread, once) when a launcher started
// several processes (launcher.h), else a SingleProcessGroup. The MPI group finalizes MPI when
// destroyed normally; while an exception unwinds it does not (the other ranks may be blocked in a
// collective, and MPI_Finalize would wait for them): the process exits non-zero and the launcher
// stops the job.
std::unique_ptr<ProcessGroup> open_process_group();

}  // namespace upcycle::dist
