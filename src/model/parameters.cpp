// TensorStore layout and checkpoint loading (see parameters.h).
#include "model/parameters.h"

#include <algorithm>
#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "core/file_util.h"

namespace upcycle::model {

TensorStore::TensorStore(backend::Backend& backend, std::vector<WeightSpec> specs) : specs_(std::move(specs)) {
  uint64_t total = 0;
  offsets_.reserve(specs_.size());
  for (size_t i = 0; i < specs_.size(); ++i) {
    offsets_.push_back(total);
    total += shape_numel(specs_[i].shape);
    bool inserted = index_.emplace(specs_[i].name, i).second;
    UPCYCLE_CHECK(inserted, "duplicate weight name " + specs_[i].name);
  }
  buffer_.reset(backend, size_t(total));
}

std::span<float> TensorStore::view(size_t index) {
  UPCYCLE_CHECK(index < specs_.size(), "tensor index out of range");
  return {buffer_.data() + offsets_[index], shape_numel(specs_[index].shape)};
}

std::span<const float> TensorStore::view(size_t index) const {
  UPCYCLE_CHECK(index < specs_.size(), "tensor index out of range");
  return {buffer_.data() + offsets_[index], shape_numel(specs_[index].shape)};
}

float* TensorStore::find(std::string_view name) {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : buffer_.data() + offsets_[it->second];
}

TensorStore TensorStore::copy_to(backend::Backend& target) const {
  TensorStore copy(target, specs_);
  copy.buffer_.upload(backend::host_view(backend(), buffer_.data(), buffer_.size()).span());
  return copy;
}

backend::HostView<float> TensorStore::host_view(size_t index) const {
  std::span<const float> v = view(index);
  return backend::host_view(backend(), v.data(), v.size());
}

const float* TensorStore::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : buffer_.data() + offsets_[it->second];
}

float* TensorStore::at(std::string_view name) {
  float* p = find(name);
  UPCYCLE_CHECK(p != nullptr, "no weight named " + std::string(name));
  return p;
}

const float* TensorStore::at(std::string_view name) const {
  const float* p = find(name);
  UPCYCLE_CHECK(p != nullptr, "no weight named " + std::string(name));
  return p;
}

void TensorStore::zero() { buffer_.zero(); }

namespace {

// n elements of `dtype` at data-section offset `begin`, converted into out_f32. pread in bounded
// chunks rather than the file mapping: a mapping would keep the whole checkpoint resident next to
// the fp32 store until it is closed (peak memory = fp32 model + file), a chunk buffer does not.
void read_as_f32(const SafetensorsFile& file, uint64_t begin, DType dtype, uint64_t n, float* out_f32) {
  const uint64_t offset = file.data_offset() + begin;
  if (dtype == DType::kF32) {
    pread_all(file.fd(), out_f32, n * sizeof(float), offset, file.path());
    return;
  }
  constexpr uint64_t kChunk = uint64_t{1} << 20;  // elements per pread
  const size_t elem = dtype_size(dtype);
  std::vector<std::byte> raw(size_t(std::min(n, kChunk)) * elem);
  for (uint64_t done = 0; done < n; done += kChunk) {
    const uint64_t count = std::min(kChunk, n - done);
    pread_all(file.fd(), raw.data(), count * elem, offset + done * elem, file.path());
    convert_floats(raw.data(), dtype, out_f32 + done, DType::kF32, size_t(count));
  }
}

// read_as_f32 for a store whose memory the host cannot write: bounded host chunks, each uploaded
// to its place (peak extra memory = one chunk, not the model).
void load_as_f32(const SafetensorsFile& file, uint64_t begin, DType dtype, uint64_t n, float* out_f32,
                 backend::Backend& be) {
  if (be.host_accessible()) return read_as_f32(file, begin, dtype, n, out_f32);  // no staging copy
  constexpr uint64_t kChunk = uint64_t{1} << 20;
  const size_t elem = dtype_size(dtype);
  std::vector<float> staging(size_t(std::min(n, kChunk)));
  for (uint64_t done = 0; done < n; done += kChunk) {
    const uint64_t count = std::min(kChunk, n - done);
    read_as_f32(file, begin + done * elem, dtype, count, staging.data());
    be.upload(out_f32 + done, staging.data(), count * sizeof(float));
  }
}

}  // namespace

WeightTable checked_weight_table(const ModelConfig& config, const Checkpoint& ckpt) {
  std::map<std::string, Shape, std::less<>> shapes;
  for (const auto& [name, ref] : ckpt.tensors()) shapes[name] = ref.info->shape;
  WeightTable table = WeightTable::build(config, shapes);
  if (!table.ok()) {
    const auto& problems = table.problems();
    std::string more = problems.size() > 1 ? " (and " + std::to_string(problems.size() - 1) + " more problems)" : "";
    throw Error(problems.front() + more, ckpt.dir().string());
  }
  return table;
}

void load_parameters(TensorStore& store, const Checkpoint& ckpt, const WeightTable& table) {
  UPCYCLE_CHECK(store.specs().size() == table.weights().size(), "store and weight table come from different configs");
  for (size_t i = 0; i < table.weights().size(); ++i) {
    const WeightSpec& spec = table.weights()[i];
    UPCYCLE_CHECK(store.specs()[i].name == spec.name, "store and weight table disagree at " + spec.name);
    const WeightLocation* loc = table.locate(spec.name);
    UPCYCLE_CHECK(loc != nullptr, "weight table has no location for " + spec.name + " (check table.ok() first)");
    const TensorRef* ref = ckpt.find(loc->tensor);
    UPCYCLE_CHECK(ref != nullptr, "weight table points at a tensor the checkpoint lacks: " + loc->tensor);
    const DType dtype = ref->info->dtype;
    if (dtype != DType::kF32 && dtype != DType::kF16 && dtype != DType::kBF16)
      throw Error("tensor " + loc->tensor + " has dtype " + std::string(dtype_name(dtype)) +
                      "; weights must be F32, F16 or BF16",
                  ref->file->path().string());
    const uint64_t n = shape_numel(spec.shape);
    UPCYCLE_CHECK(loc->element_offset + n <= ref->info->numel(), "weight location runs past its tensor: " + spec.name);
    load_as_f32(*ref->file, ref->info->begin + loc->element_offset * dtype_size(dtype), dtype, n, store.view(i).data(),
                store.backend());
  }
}

}  // namespace upcycle::model
