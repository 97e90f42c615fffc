// Run under `mpirun -np 3` by dist_tests (ProcessGroup.*): checks the MPI process group from inside
// the ranks and exits non-zero with a line naming what failed.
//  - the sum runs in rank order: rank values 1e8, −1e8, 1 give exactly 1 as ((1e8 + −1e8) + 1) in
//    float, while any other order gives 0 (1e8 + 1 rounds to 1e8): the fixed order is observable;
//  - every rank gets the same bits; doubles and int64 sum exactly; a buffer longer than one message
//    chunk (2^20 elements) is reduced whole; broadcast and all_gather carry the right values;
//  - rank, size and local rank agree with mpirun's environment.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "dist/process_group.h"

namespace {

int failures = 0;

void expect(bool ok, const std::string& what, int rank) {
  if (ok) return;
  std::fprintf(stderr, "rank %d: %s\n", rank, what.c_str());
  ++failures;
}

int env_int(const char* name) { return std::atoi(std::getenv(name) ? std::getenv(name) : "-1"); }

}  // namespace

int main() {
  auto group = upcycle::dist::open_process_group();
  const int rank = group->rank(), size = group->size();
  expect(size == 3, "size " + std::to_string(size) + ", want 3", rank);
  expect(rank == env_int("OMPI_COMM_WORLD_RANK"), "rank differs from OMPI_COMM_WORLD_RANK", rank);
  expect(group->local_rank() == env_int("OMPI_COMM_WORLD_LOCAL_RANK"), "local rank differs from mpirun's", rank);

  const float cancelling[3] = {1e8f, -1e8f, 1.0f};
  std::vector<float> f(3, cancelling[rank]);
  group->all_reduce_sum(f.data(), f.size());
  for (float x : f) expect(x == 1.0f, "float sum " + std::to_string(x) + ", want 1 (rank order)", rank);

  const size_t long_n = (size_t(1) << 20) + 5;  // two messages
  std::vector<double> d(long_n);
  for (size_t i = 0; i < long_n; ++i) d[i] = double(i) * (rank + 1);
  group->all_reduce_sum(d.data(), d.size());
  bool exact = true;
  for (size_t i = 0; i < long_n; ++i) exact = exact && d[i] == double(i) * 6;
  expect(exact, "double sum of 2^20+5 elements is not Σ (r+1)·i", rank);

  std::vector<int64_t> n{int64_t(1) << 40, rank};
  group->all_reduce_sum(n.data(), n.size());
  expect(n[0] == 3 * (int64_t(1) << 40) && n[1] == 3, "int64 sums wrong", rank);

  std::string text = rank == 1 ? "from rank one" : "-------------";
  group->broadcast(text.data(), text.size(), 1);
  expect(text == "from rank one", "broadcast from rank 1 gave '" + text + "'", rank);

  const auto gathered = group->all_gather(10 * rank + 7);
  expect(gathered == std::vector<int64_t>{7, 17, 27}, "all_gather wrong", rank);
  group->barrier();
  return failures == 0 ? 0 : 1;
}
