// Gradient and statistics reductions of data-parallel training (see data_parallel.h).
#include "train/data_parallel.h"

#include <cstdint>

#include "train/trainer.h"

namespace upcycle::train {

void all_reduce_backend_sum(backend::Backend& backend, dist::ProcessGroup& group, float* data, size_t n) {
  if (group.size() == 1 || n == 0) return;
  if (backend.host_accessible()) {
    group.all_reduce_sum(data, n);
    return;
  }
  std::vector<float> host(n);  // host staging until a device transport (NCCL) reduces in place
  backend.download(host.data(), data, n * sizeof(float));
  group.all_reduce_sum(host.data(), n);
  backend.upload(data, host.data(), n * sizeof(float));
}

void all_reduce_step_sums(dist::ProcessGroup& group, double& loss_sum, std::vector<LayerStepStats>& moe) {
  if (group.size() == 1) return;
  std::vector<double> reals{loss_sum};
  std::vector<int64_t> counts;
  for (const auto& l : moe) {
    reals.insert(reals.end(), {l.router_entropy, l.top1_probability, l.aux_loss, l.z_loss, l.dirichlet_loss});
    counts.insert(counts.end(), l.tokens_per_expert.begin(), l.tokens_per_expert.end());
    counts.insert(counts.end(), {l.assignments, l.dropped});
  }
  group.all_reduce_sum(reals.data(), reals.size());
  group.all_reduce_sum(counts.data(), counts.size());
  size_t r = 0, c = 0;
  loss_sum = reals[r++];
  for (auto& l : moe) {
    for (double* x : {&l.router_entropy, &l.top1_probability, &l.aux_loss, &l.z_loss, &l.dirichlet_loss}) *x = reals[r++];
    for (auto& n : l.tokens_per_expert) n = counts[c++];
    l.assignments = counts[c++];
    l.dropped = counts[c++];
  }
}

}  // namespace upcycle::train
