// Streamed, sharded safetensors writing (see checkpoint_writer.h).
// Every offset is fixed at construction, so writing is a pwrite at the final position: tensors may
// arrive in any order and in pieces, also from several threads at once (the written-range bookkeeping
// is under a mutex; pwrite needs none). Each tensor records which byte ranges were written, so a piece
// written twice is caught when it arrives and finish() can say what is missing. Conversions and
// fallback copies go through buffers of at most kChunkElements elements: peak memory is bounded by
// that, never by a tensor's size. An unfinished writer leaves its partial files for the caller's
// directory (normally a StagedDir) to remove.
#include "io/checkpoint_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_util.h"
#include "core/json.h"
#include "core/units.h"
#include "io/checkpoint.h"

namespace upcycle {
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kChunkElements = uint64_t{1} << 20;  // ≤ 8 MB per buffer, even for F64

// Disjoint written byte ranges of one tensor; adjacent ranges merge, so in-order writes keep one entry.
class WrittenRanges {
 public:
  // False (and nothing recorded) when [begin, end) overlaps bytes already written.
  bool add(uint64_t begin, uint64_t end) {
    if (begin == end) return true;
    const uint64_t size = end - begin;
    auto next = ranges_.lower_bound(begin);
    if (next != ranges_.end() && next->first < end) return false;
    if (next != ranges_.begin()) {
      auto prev = std::prev(next);
      if (prev->second > begin) return false;
      if (prev->second == begin) {
        begin = prev->first;
        ranges_.erase(prev);
      }
    }
    if (next != ranges_.end() && next->first == end) {
      end = next->second;
      ranges_.erase(next);
    }
    ranges_.emplace(begin, end);
    covered_ += size;
    return true;
  }
  uint64_t covered() const { return covered_; }

 private:
  std::map<uint64_t, uint64_t> ranges_;  // begin -> end
  uint64_t covered_ = 0;
};

struct PlannedTensor {
  TensorDecl decl;
  size_t shard = 0;
  uint64_t begin = 0;  // offset in the shard's data section
  uint64_t nbytes = 0;
  WrittenRanges written;
};

struct ShardFile {
  std::string name;
  fs::path path;
  FileDescriptor fd;
  uint64_t data_offset = 0;  // 8 + padded header length
  uint64_t data_bytes = 0;
  std::vector<size_t> tensors;  // indices into the plan, declaration order
};

std::string shard_file_name(size_t index, size_t count, const std::string& single_file_name) {
  if (count == 1) return single_file_name;
  char name[64];
  std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", index + 1, count);
  return name;
}

uint64_t tensor_bytes(const TensorDecl& decl) {
  uint64_t bytes = dtype_size(decl.dtype);
  for (int64_t dim : decl.shape) {
    UPCYCLE_CHECK(dim >= 0, "tensor '" + decl.name + "' declared with a negative dimension");
    UPCYCLE_CHECK(!__builtin_mul_overflow(bytes, uint64_t(dim), &bytes), "tensor '" + decl.name + "' is too large");
  }
  return bytes;
}

// Compact JSON, `__metadata__` first, tensors in declaration order, spaces up to 8-byte alignment.
// Built by concatenation: ordered_json would insert each tensor by linear search.
std::string shard_header(const std::vector<PlannedTensor>& plan, const ShardFile& shard,
                         const std::map<std::string, std::string>& metadata) {
  Json meta = {{"format", "pt"}};
  for (const auto& [key, value] : metadata) meta[key] = value;
  std::string text = "{\"__metadata__\":" + meta.dump();
  for (size_t i : shard.tensors) {
    const PlannedTensor& t = plan[i];
    Json entry = {{"dtype", std::string(dtype_name(t.decl.dtype))},
                  {"shape", t.decl.shape},
                  {"data_offsets", {t.begin, t.begin + t.nbytes}}};
    text.append(",").append(Json(t.decl.name).dump()).append(":").append(entry.dump());
  }
  text += "}";
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');
  return text;
}

// Reserves the whole file up front so a full disk fails here, naming the shard, not halfway through.
void reserve_space(int fd, uint64_t size, const fs::path& path) {
  int rc;
  do rc = ::fallocate(fd, 0, 0, static_cast<off_t>(size));
  while (rc != 0 && errno == EINTR);
  if (rc == 0) return;
  const int err = errno;
  if (err == ENOSPC) throw Error("not enough disk space for this shard (" + format_bytes(size) + ")", path.string());
  if (err == EFBIG)
    throw Error("shard of " + format_bytes(size) + " is too large for this filesystem or limit", path.string());
  if (err != EOPNOTSUPP && err != ENOSYS && err != EINVAL)
    throw Error("cannot reserve space: " + errno_text(err), path.string());
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0)
    throw Error("cannot size shard: " + errno_text(errno), path.string());
}

void create_shard(ShardFile& shard, const std::string& header) {
  if (header.size() > kMaxSafetensorsHeader)
    throw Error("shard header would be " + format_bytes(header.size()) + ", over the safetensors limit",
                shard.path.string());
  shard.fd = FileDescriptor(::open(shard.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!shard.fd.valid()) throw Error("cannot create shard: " + errno_text(errno), shard.path.string());
  shard.data_offset = 8 + header.size();
  reserve_space(shard.fd.get(), shard.data_offset + shard.data_bytes, shard.path);
  unsigned char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(header.size() >> (8 * i));
  pwrite_all(shard.fd.get(), length, 8, 0, shard.path);
  pwrite_all(shard.fd.get(), header.data(), header.size(), 8, shard.path);
}

void convert_range(const SafetensorsFile& source, const TensorInfo& info, const ShardFile& shard, uint64_t to,
                   DType dst_dtype) {
  const uint64_t src_size = dtype_size(info.dtype), dst_size = dtype_size(dst_dtype);
  const uint64_t numel = info.numel();
  std::vector<std::byte> in(std::min(numel, kChunkElements) * src_size),
      out(std::min(numel, kChunkElements) * dst_size);
  uint64_t from = source.data_offset() + info.begin;
  for (uint64_t done = 0; done < numel;) {
    uint64_t n = std::min(numel - done, kChunkElements);
    pread_all(source.fd(), in.data(), n * src_size, from, source.path());
    convert_floats(in.data(), info.dtype, out.data(), dst_dtype, n);
    pwrite_all(shard.fd.get(), out.data(), n * dst_size, to, shard.path);
    done += n;
    from += n * src_size;
    to += n * dst_size;
  }
}

}  // namespace

struct CheckpointWriter::Impl {
  fs::path dir;
  std::vector<PlannedTensor> plan;
  std::map<std::string, size_t, std::less<>> by_name;
  std::vector<ShardFile> shards;
  std::mutex mutex;  // guards PlannedTensor::written and finished
  bool finished = false;

  PlannedTensor& lookup(std::string_view name) {
    auto it = by_name.find(name);
    UPCYCLE_CHECK(it != by_name.end(), "write to undeclared tensor '" + std::string(name) + "'");
    return plan[it->second];
  }

  // Marks [offset, offset + size) of the tensor written; the caller then writes it.
  void claim(PlannedTensor& t, uint64_t offset, uint64_t size) {
    std::lock_guard lock(mutex);
    UPCYCLE_CHECK(!finished, "write to tensor '" + t.decl.name + "' after finish()");
    UPCYCLE_CHECK(offset <= t.nbytes && size <= t.nbytes - offset,
                  "write past the end of tensor '" + t.decl.name + "'");
    UPCYCLE_CHECK(t.written.add(offset, offset + size), "bytes of tensor '" + t.decl.name + "' written twice");
  }

  uint64_t file_offset(const PlannedTensor& t, uint64_t offset) const {
    return shards[t.shard].data_offset + t.begin + offset;
  }
};

CheckpointWriter::CheckpointWriter(fs::path dir, std::vector<TensorDecl> tensors, CheckpointWriterOptions options)
    : impl_(std::make_unique<Impl>()) {
  Impl& impl = *impl_;
  impl.dir = std::move(dir);
  if (tensors.empty()) throw Error("no tensors to write", impl.dir.string());
  for (auto& decl : tensors) {
    if (decl.name == "__metadata__")
      throw Error("tensor name '__metadata__' is reserved by safetensors", impl.dir.string());
    if (!impl.by_name.emplace(decl.name, impl.plan.size()).second)
      throw Error("tensor '" + decl.name + "' is declared twice", impl.dir.string());
    const uint64_t nbytes = tensor_bytes(decl);
    // Greedy like HF: a shard exists only once it holds a tensor, so an oversized tensor gets its own.
    if (impl.shards.empty() || impl.shards.back().data_bytes + nbytes > options.max_shard_bytes)
      impl.shards.emplace_back();
    ShardFile& shard = impl.shards.back();
    shard.tensors.push_back(impl.plan.size());
    impl.plan.push_back({std::move(decl), impl.shards.size() - 1, shard.data_bytes, nbytes, {}});
    shard.data_bytes += nbytes;
  }
  for (size_t i = 0; i < impl.shards.size(); ++i) {
    ShardFile& shard = impl.shards[i];
    shard.name = shard_file_name(i, impl.shards.size(), options.single_file_name);
    shard.path = impl.dir / shard.name;
    create_shard(shard, shard_header(impl.plan, shard, options.metadata));
  }
}

CheckpointWriter::~CheckpointWriter() = default;

void CheckpointWriter::write(std::string_view name, std::span<const std::byte> bytes, uint64_t offset) {
  PlannedTensor& t = impl_->lookup(name);
  impl_->claim(t, offset, bytes.size());
  const ShardFile& shard = impl_->shards[t.shard];
  pwrite_all(shard.fd.get(), bytes.data(), bytes.size(), impl_->file_offset(t, offset), shard.path);
}

void CheckpointWriter::write_f32(std::string_view name, std::span<const float> values, uint64_t first_element) {
  PlannedTensor& t = impl_->lookup(name);
  const DType dtype = t.decl.dtype;
  UPCYCLE_CHECK(dtype_is_float(dtype), "write_f32 to non-float tensor '" + t.decl.name + "'");
  const uint64_t element_size = dtype_size(dtype);
  UPCYCLE_CHECK(first_element <= t.nbytes / element_size, "write past the end of tensor '" + t.decl.name + "'");
  impl_->claim(t, first_element * element_size, values.size() * element_size);
  const ShardFile& shard = impl_->shards[t.shard];
  uint64_t to = impl_->file_offset(t, first_element * element_size);
  if (dtype == DType::kF32) return pwrite_all(shard.fd.get(), values.data(), values.size_bytes(), to, shard.path);
  std::vector<std::byte> buffer(std::min<uint64_t>(values.size(), kChunkElements) * element_size);
  for (size_t done = 0; done < values.size();) {
    size_t n = std::min<uint64_t>(values.size() - done, kChunkElements);
    convert_floats(values.data() + done, DType::kF32, buffer.data(), dtype, n);
    pwrite_all(shard.fd.get(), buffer.data(), n * element_size, to, shard.path);
    done += n;
    to += n * element_size;
  }
}

void CheckpointWriter::copy_from(std::string_view name, const SafetensorsFile& source,
                                 const TensorInfo& source_tensor) {
  PlannedTensor& t = impl_->lookup(name);
  UPCYCLE_CHECK(source_tensor.end <= source.file_size() - source.data_offset(),
                "tensor '" + source_tensor.name + "' is not from " + source.path().string());
  const std::string what = "cannot copy tensor '" + source_tensor.name + "' into '" + t.decl.name + "': ";
  const uint64_t numel = shape_numel(t.decl.shape);
  if (source_tensor.numel() != numel)
    throw Error(what + "it has " + std::to_string(source_tensor.numel()) + " elements, the output declares " +
                    std::to_string(numel),
                source.path().string());
  const bool same_dtype = source_tensor.dtype == t.decl.dtype;
  if (!same_dtype && !(dtype_is_float(source_tensor.dtype) && dtype_is_float(t.decl.dtype)))
    throw Error(what + "cannot convert " + std::string(dtype_name(source_tensor.dtype)) + " to " +
                    std::string(dtype_name(t.decl.dtype)),
                source.path().string());
  impl_->claim(t, 0, t.nbytes);
  const ShardFile& shard = impl_->shards[t.shard];
  if (same_dtype)
    copy_file_bytes(source.fd(), source.data_offset() + source_tensor.begin, shard.fd.get(), impl_->file_offset(t, 0),
                    t.nbytes, source.path(), shard.path);
  else
    convert_range(source, source_tensor, shard, impl_->file_offset(t, 0), t.decl.dtype);
}

std::vector<std::string> CheckpointWriter::finish() {
  Impl& impl = *impl_;
  std::lock_guard lock(impl.mutex);
  UPCYCLE_CHECK(!impl.finished, "finish() called twice");
  for (const auto& t : impl.plan)
    if (t.written.covered() != t.nbytes)
      throw Error("tensor '" + t.decl.name + "' is incomplete: " + std::to_string(t.nbytes - t.written.covered()) +
                      " of " + std::to_string(t.nbytes) + " bytes were never written",
                  impl.shards[t.shard].path.string());
  impl.finished = true;
  std::vector<std::string> files;
  for (auto& shard : impl.shards) {
    if (::fsync(shard.fd.get()) != 0) throw Error("fsync failed: " + errno_text(errno), shard.path.string());
    shard.fd = FileDescriptor();
    files.push_back(shard.name);
  }
  if (impl.shards.size() > 1) {
    // nlohmann::json sorts keys (std::map), as HF's json.dumps(sort_keys=True); ensure_ascii as in Python.
    nlohmann::json weight_map = nlohmann::json::object();
    for (const auto& t : impl.plan) weight_map[t.decl.name] = impl.shards[t.shard].name;
    nlohmann::json index = {{"metadata", {{"total_size", total_bytes()}}}, {"weight_map", std::move(weight_map)}};
    write_text_file(impl.dir / kIndexFileName, index.dump(2, ' ', true) + "\n");
    files.push_back(kIndexFileName);
  }
  return files;
}

size_t CheckpointWriter::shard_count() const { return impl_->shards.size(); }

uint64_t CheckpointWriter::total_bytes() const {
  uint64_t total = 0;
  for (const auto& t : impl_->plan) total += t.nbytes;
  return total;
}

}  // namespace upcycle
