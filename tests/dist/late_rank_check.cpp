// Run under mpirun by DistGroup.* (late_rank_test.cpp): every rank joins one small reduction under
// --dist-timeout's bound, after rank LATE has slept SLEEP seconds (a rank that hangs, or a rank 0 still
// evaluating). Usage: late_rank_check LATE SLEEP LIMIT. Exits 0 when the reduction completes.
#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

#include "dist/process_group.h"

int main(int argc, char** argv) {
  if (argc != 4) return 64;
  const int late = std::atoi(argv[1]);
  auto group = upcycle::dist::open_process_group();
  group->set_wait_limit(std::atof(argv[3]));
  group->set_activity("the check's reduction");
  if (group->rank() == late) std::this_thread::sleep_for(std::chrono::duration<double>(std::atof(argv[2])));
  std::vector<float> x(1000, 1.0f);
  group->all_reduce_sum(x.data(), x.size());
  return x[0] == float(group->size()) ? 0 : 1;
}
