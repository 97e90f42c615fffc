// fp32 parameter and gradient stores: one contiguous buffer holding every canonical weight of a
// model (WeightTable / expected_weights order, packed back to back), plus a name → view index.
// Invariants: views never overlap and tile the buffer exactly; the spec list is the one the store
// was built from, so a parameter store and its gradient store built from the same config have the
// same layout element for element (optimisers can walk both buffers as flat arrays).
// Memory: the buffer is a backend::Buffer<float> of the Backend given at construction — the one that
// computes with it (Transformer passes its own). data()/view()/find()/at() return backend pointers;
// the host reads a weight through host_view() (aliasing on host backends, one download otherwise).
// Stores that no op computes on (analysis, save/convert helpers, tests) use backend::host_memory().
// Loading converts F32/F16/BF16 on disk to fp32 and reads fused expert tensors through
// WeightTable::locate(): straight into the buffer on a host-accessible backend, else through a bounded
// host staging buffer and upload. Non-goals: other dtypes, lazy/partial loading.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "backend/buffer.h"
#include "backend/host_view.h"
#include "io/checkpoint.h"
#include "io/model_config.h"
#include "io/weight_table.h"

namespace upcycle::model {

class TensorStore {
 public:
  TensorStore() = default;
  TensorStore(backend::Backend& backend, std::vector<WeightSpec> specs);  // zero-filled
  static TensorStore for_config(const ModelConfig& config, backend::Backend& backend) {
    return TensorStore(backend, expected_weights(config));
  }

  const std::vector<WeightSpec>& specs() const { return specs_; }
  float* data() { return buffer_.data(); }
  const float* data() const { return buffer_.data(); }
  size_t size() const { return buffer_.size(); }  // total elements
  std::span<float> view(size_t index);             // index into specs()
  std::span<const float> view(size_t index) const;
  // The host's read of weight `index` (an explicit readback; aliases the buffer on host backends).
  backend::HostView<float> host_view(size_t index) const;
  // A copy of this store on `target` (one transfer of the whole buffer): e.g. a device model's weights
  // brought to backend::host_memory() for host-side analysis.
  TensorStore copy_to(backend::Backend& target) const;
  backend::Backend& backend() const { return *buffer_.backend(); }
  backend::Buffer<float>& buffer() { return buffer_; }
  const backend::Buffer<float>& buffer() const { return buffer_; }
  // nullptr when the store has no weight of that name.
  float* find(std::string_view name);
  const float* find(std::string_view name) const;
  // The view of a weight the config guarantees (UPCYCLE_CHECK on absence: a bug, not user input).
  float* at(std::string_view name);
  const float* at(std::string_view name) const;
  void zero();

 private:
  std::vector<WeightSpec> specs_;
  std::vector<uint64_t> offsets_;  // element offset of specs_[i]
  std::map<std::string, size_t, std::less<>> index_;
  backend::Buffer<float> buffer_;
};

// Builds the weight table of `ckpt` for `config`; throws Error naming the checkpoint directory and
// the first problem (plus a count of the others) when the tensors do not match the config.
WeightTable checked_weight_table(const ModelConfig& config, const Checkpoint& ckpt);

// Fills `store` (built for the same config as `table`) from the checkpoint, converting to fp32.
// Errors (non-float dtype on disk) name the tensor's file.
void load_parameters(TensorStore& store, const Checkpoint& ckpt, const WeightTable& table);

}  // namespace upcycle::model
