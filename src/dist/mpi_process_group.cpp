// MpiProcessGroup (see mpi_process_group.h): MPI_COMM_WORLD, nonblocking point-to-point messages through
// rank 0, each wait polled against the --dist-timeout deadline.
#include "dist/mpi_process_group.h"

#ifdef UPCYCLE_HAVE_MPI

// The C API only: without these, <mpi.h> pulls in the deprecated C++ bindings, which need libmpi_cxx.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"

namespace upcycle::dist {
namespace {

constexpr size_t kChunk = size_t(1) << 20;  // elements per reduction message (4 MiB of floats)
// One tag per kind of message: the ranks call the collectives in the same order and MPI keeps the
// order of messages with the same source and tag, so each message meets the receive meant for it.
enum Tag : int { kPresentTag = 17, kToRootTag = 18, kFromRootTag = 19 };
// Extra seconds the other ranks give rank 0 once it has announced itself: it may itself be waiting the
// whole limit on a late rank, and should be the one to name it.
constexpr double kRootGraceSeconds = 10;
// A wait shorter than this spins (yielding the core): a message in flight arrives within it. Longer
// waits sleep between polls, leaving the cores to a rank that is evaluating or writing a checkpoint.
constexpr double kSpinSeconds = 1;

template <class T>
MPI_Datatype mpi_type();
template <>
MPI_Datatype mpi_type<float>() { return MPI_FLOAT; }
template <>
MPI_Datatype mpi_type<double>() { return MPI_DOUBLE; }
template <>
MPI_Datatype mpi_type<int64_t>() { return MPI_INT64_T; }
template <>
MPI_Datatype mpi_type<char>() { return MPI_BYTE; }
template <>
MPI_Datatype mpi_type<int>() { return MPI_INT; }

// One message in flight and the rank at its other end: the one to name when it does not complete.
struct Pending {
  MPI_Request request = MPI_REQUEST_NULL;
  int peer = -1;
  bool incoming = true;
};

template <class T>
Pending receive(T* data, size_t n, int from, int tag) {
  Pending p{MPI_REQUEST_NULL, from, true};
  MPI_Irecv(data, int(n), mpi_type<T>(), from, tag, MPI_COMM_WORLD, &p.request);
  return p;
}

template <class T>
Pending send(const T* data, size_t n, int to, int tag) {
  Pending p{MPI_REQUEST_NULL, to, false};
  MPI_Isend(data, int(n), mpi_type<T>(), to, tag, MPI_COMM_WORLD, &p.request);
  return p;
}

// The same `n` values from rank `from` to every other rank of `size`, added to `pending`.
template <class T>
void send_to_others(std::vector<Pending>& pending, const T* data, size_t n, int from, int size, int tag) {
  for (int r = 0; r < size; ++r)
    if (r != from) pending.push_back(send(data, n, r, tag));
}

class MpiProcessGroup final : public ProcessGroup {
 public:
  explicit MpiProcessGroup(const LauncherInfo& launcher) {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    if ((launcher.rank && *launcher.rank != rank_) || (launcher.size && *launcher.size != size_))
      throw Error("the launcher (" + launcher.launcher + ") names rank " + std::to_string(launcher.rank.value_or(-1)) +
                  " of " + std::to_string(launcher.size.value_or(-1)) + ", MPI rank " + std::to_string(rank_) + " of " +
                  std::to_string(size_) + ": upcycle was built against another MPI than the launcher's");
    if (launcher.local_rank) {
      local_rank_ = *launcher.local_rank;
    } else {  // the ranks sharing this machine's memory
      MPI_Comm node;
      MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node);
      MPI_Comm_rank(node, &local_rank_);
      MPI_Comm_free(&node);
    }
  }
  ~MpiProcessGroup() override {
    if (std::uncaught_exceptions() == 0) MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  void set_wait_limit(double seconds) override { limit_ = seconds; }
  void set_activity(std::string what) override { activity_ = std::move(what); }
  void barrier() override { all_gather(0); }
  void all_reduce_sum(float* data, size_t n) override { reduce_in_rank_order(data, n); }
  void all_reduce_sum(double* data, size_t n) override { reduce_in_rank_order(data, n); }
  void all_reduce_sum(int64_t* data, size_t n) override { reduce_in_rank_order(data, n); }

  void broadcast(void* data, size_t bytes, int root) override {
    enter();
    auto* p = static_cast<char*>(data);
    for (size_t off = 0; off < bytes; off += kChunk) {
      const size_t count = std::min(kChunk, bytes - off);
      std::vector<Pending> pending;
      if (rank_ == root) {
        send_to_others(pending, p + off, count, root, size_, kFromRootTag);
      } else {
        pending.push_back(receive(p + off, count, root, kFromRootTag));
      }
      await(pending, rank_ == root || root != 0 ? limit_ : root_limit());
    }
  }

  // Rank 0 collects every rank's value and sends the whole list back.
  std::vector<int64_t> all_gather(int64_t value) override {
    enter();
    std::vector<int64_t> all(size_t(size_), 0);
    all[size_t(rank_)] = value;
    std::vector<Pending> pending;
    if (rank_ == 0) {
      for (int r = 1; r < size_; ++r) pending.push_back(receive(&all[size_t(r)], 1, r, kToRootTag));
      await(pending, limit_);
      pending.clear();
      send_to_others(pending, all.data(), all.size(), 0, size_, kFromRootTag);
      await(pending, limit_);
    } else {
      pending = {send(&value, 1, 0, kToRootTag), receive(all.data(), all.size(), 0, kFromRootTag)};
      await(pending, root_limit());
    }
    return all;
  }

 private:
  // Rank 0 adds rank 1's chunk, then rank 2's, …, and sends the sum to every rank, chunk by chunk.
  template <class T>
  void reduce_in_rank_order(T* data, size_t n) {
    enter();
    const size_t chunk_max = std::min(n, kChunk);
    std::vector<T> incoming(rank_ == 0 ? chunk_max * size_t(size_ - 1) : 0);
    for (size_t off = 0; off < n; off += kChunk) {
      const size_t count = std::min(kChunk, n - off);
      T* chunk = data + off;
      if (rank_ == 0) {
        std::vector<Pending> pending;
        for (int r = 1; r < size_; ++r) pending.push_back(receive(&incoming[size_t(r - 1) * chunk_max], count, r, kToRootTag));
        await(pending, limit_);
        for (int r = 1; r < size_; ++r) {
          const T* from = &incoming[size_t(r - 1) * chunk_max];
          for (size_t i = 0; i < count; ++i) chunk[i] += from[i];
        }
        pending.clear();
        send_to_others(pending, chunk, count, 0, size_, kFromRootTag);
        await(pending, limit_);
      } else {  // the send must finish before the sum lands in the same memory
        std::vector<Pending> pending{send(chunk, count, 0, kToRootTag)};
        await(pending, root_limit());
        pending = {receive(chunk, count, 0, kFromRootTag)};
        await(pending, root_limit());
      }
    }
  }

  // The start of a collective: rank 0 tells the others it has arrived (it may come late, after an
  // evaluation or a checkpoint write); they wait the limit for that, then the limit and a grace period
  // for each message from rank 0, during which rank 0 names any rank it waits on in vain.
  void enter() {
    std::vector<Pending> pending;
    if (rank_ == 0)
      send_to_others(pending, &present_token_, 1, 0, size_, kPresentTag);
    else
      pending.push_back(receive(&present_token_, 1, 0, kPresentTag));
    await(pending, limit_);
  }

  double root_limit() const { return limit_ > 0 ? limit_ + std::min(limit_, kRootGraceSeconds) : 0; }

  // Polls the messages until all are complete; after `limit` seconds (0: never) ends the job naming the
  // first rank whose message has not completed.
  void await(std::vector<Pending>& pending, double limit) const {
    const auto start = std::chrono::steady_clock::now();
    for (;;) {
      bool all_done = true;
      for (Pending& p : pending) {
        if (p.request == MPI_REQUEST_NULL) continue;
        int done = 0;
        MPI_Test(&p.request, &done, MPI_STATUS_IGNORE);  // a completed request becomes MPI_REQUEST_NULL
        all_done = all_done && done;
      }
      if (all_done) return;
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (limit > 0 && waited > limit)
        for (const Pending& p : pending)
          if (p.request != MPI_REQUEST_NULL) fail_late(p, limit);
      if (waited < kSpinSeconds)
        std::this_thread::yield();
      else
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  // The line commands.cpp prints for an Error, written here because MPI_Abort ends this process (and,
  // through the launcher, every rank) at once: a hung rank cannot take part in an orderly exit.
  [[noreturn]] void fail_late(const Pending& late, double limit) const {
    std::fflush(stdout);
    std::fprintf(stderr, "upcycle: error: rank %d of %d: rank %d %s for %g s in %s (hung or too slow; --dist-timeout S)\n",
                 rank_, size_, late.peer, late.incoming ? "sent nothing" : "took nothing", limit, activity_.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 2);
    std::_Exit(2);
  }

  int rank_ = 0, size_ = 1, local_rank_ = 0;
  double limit_ = 0;  // seconds; 0: wait forever
  std::string activity_ = "a collective operation";
  int present_token_ = 0;
};

}  // namespace

std::unique_ptr<ProcessGroup> make_mpi_process_group(const LauncherInfo& launcher) {
  return std::make_unique<MpiProcessGroup>(launcher);
}

}  // namespace upcycle::dist

#else  // a build without MPI (UPCYCLE_MPI=OFF, e.g. scripts/device-check's): one process only

#include "core/error.h"

namespace upcycle::dist {

std::unique_ptr<ProcessGroup> make_mpi_process_group(const LauncherInfo& launcher) {
  throw Error("started by " + launcher.launcher + " as one of several processes, but this upcycle was built " +
              "without MPI (UPCYCLE_MPI=OFF): rebuild with Open MPI installed (scripts/setup) to train across processes");
}

}  // namespace upcycle::dist

#endif  // UPCYCLE_HAVE_MPI
