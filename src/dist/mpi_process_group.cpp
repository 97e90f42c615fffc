// MpiProcessGroup (see mpi_process_group.h): MPI_COMM_WORLD, blocking point-to-point + broadcast.
#include "dist/mpi_process_group.h"

#ifdef UPCYCLE_HAVE_MPI

// The C API only: without these, <mpi.h> pulls in the deprecated C++ bindings, which need libmpi_cxx.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <exception>
#include <string>
#include <vector>

#include "core/error.h"

namespace upcycle::dist {
namespace {

constexpr size_t kChunk = size_t(1) << 20;  // elements per reduction message (4 MiB of floats)
constexpr int kReduceTag = 18;

template <class T>
MPI_Datatype mpi_type();
template <>
MPI_Datatype mpi_type<float>() { return MPI_FLOAT; }
template <>
MPI_Datatype mpi_type<double>() { return MPI_DOUBLE; }
template <>
MPI_Datatype mpi_type<int64_t>() { return MPI_INT64_T; }

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
  void barrier() override { MPI_Barrier(MPI_COMM_WORLD); }
  void all_reduce_sum(float* data, size_t n) override { reduce_in_rank_order(data, n); }
  void all_reduce_sum(double* data, size_t n) override { reduce_in_rank_order(data, n); }
  void all_reduce_sum(int64_t* data, size_t n) override { reduce_in_rank_order(data, n); }

  void broadcast(void* data, size_t bytes, int root) override {
    auto* p = static_cast<char*>(data);
    for (size_t off = 0; off < bytes; off += kChunk) MPI_Bcast(p + off, int(std::min(kChunk, bytes - off)), MPI_BYTE, root, MPI_COMM_WORLD);
  }

  std::vector<int64_t> all_gather(int64_t value) override {
    std::vector<int64_t> all(size_t(size_), 0);
    MPI_Allgather(&value, 1, MPI_INT64_T, all.data(), 1, MPI_INT64_T, MPI_COMM_WORLD);
    return all;
  }

 private:
  // Rank 0 adds rank 1's chunk, then rank 2's, …; the sum is broadcast chunk by chunk.
  template <class T>
  void reduce_in_rank_order(T* data, size_t n) {
    std::vector<T> incoming(rank_ == 0 ? std::min(n, kChunk) : 0);
    for (size_t off = 0; off < n; off += kChunk) {
      const int count = int(std::min(kChunk, n - off));
      T* chunk = data + off;
      if (rank_ == 0) {
        for (int r = 1; r < size_; ++r) {
          MPI_Recv(incoming.data(), count, mpi_type<T>(), r, kReduceTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
          for (int i = 0; i < count; ++i) chunk[i] += incoming[size_t(i)];
        }
      } else {
        MPI_Send(chunk, count, mpi_type<T>(), 0, kReduceTag, MPI_COMM_WORLD);
      }
      MPI_Bcast(chunk, count, mpi_type<T>(), 0, MPI_COMM_WORLD);
    }
  }

  int rank_ = 0, size_ = 1, local_rank_ = 0;
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
