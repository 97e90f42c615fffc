// GGUF writing (see gguf_writer.h).
#include "io/gguf_writer.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "core/error.h"
#include "core/file_util.h"

namespace upcycle {
namespace {

constexpr uint64_t kAlignment = 32;  // GGUF_DEFAULT_ALIGNMENT: no general.alignment key needed
constexpr uint32_t kString = 8, kArray = 9, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7;

template <typename T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}

void put_string(std::string& out, const std::string& s) {
  put(out, uint64_t(s.size()));
  out += s;
}

uint64_t align(uint64_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; }

}  // namespace

void GgufWriter::key(const std::string& name, uint32_t type) {
  put_string(kv_, name);
  put(kv_, type);
  ++kv_count_;
}

void GgufWriter::add_string(const std::string& k, const std::string& value) {
  key(k, kString);
  put_string(kv_, value);
}
void GgufWriter::add_u32(const std::string& k, uint32_t value) {
  key(k, kU32);
  put(kv_, value);
}
void GgufWriter::add_f32(const std::string& k, float value) {
  key(k, kF32);
  put(kv_, value);
}
void GgufWriter::add_bool(const std::string& k, bool value) {
  key(k, kBool);
  put(kv_, uint8_t(value ? 1 : 0));
}
void GgufWriter::add_strings(const std::string& k, const std::vector<std::string>& values) {
  key(k, kArray);
  put(kv_, kString);
  put(kv_, uint64_t(values.size()));
  for (const auto& v : values) put_string(kv_, v);
}
void GgufWriter::add_i32s(const std::string& k, const std::vector<int32_t>& values) {
  key(k, kArray);
  put(kv_, kI32);
  put(kv_, uint64_t(values.size()));
  for (int32_t v : values) put(kv_, v);
}

void GgufWriter::add_tensor(const std::string& name, std::vector<int64_t> ne, GgmlType type) {
  const GgmlTypeInfo& info = ggml_type_info(type);
  UPCYCLE_CHECK(!ne.empty() && ne.size() <= 4 && ne[0] % info.block_size == 0, "bad GGUF tensor shape for " + name);
  uint64_t numel = 1;
  for (int64_t n : ne) numel *= static_cast<uint64_t>(n);
  Tensor t{name, std::move(ne), type, data_size_, numel / info.block_size * info.block_bytes};
  data_size_ = align(t.offset + t.nbytes);
  tensors_.push_back(std::move(t));
}

const GgufWriter::Tensor& GgufWriter::tensor(const std::string& name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return t;
  UPCYCLE_CHECK(false, "undeclared GGUF tensor " + name);
}

uint64_t GgufWriter::tensor_bytes(const std::string& name) const { return tensor(name).nbytes; }

void GgufWriter::write(const std::filesystem::path& path, const std::function<void(const TensorSink&)>& produce) const {
  std::string header;
  put(header, uint32_t(0x46554747));  // "GGUF"
  put(header, uint32_t(3));
  put(header, uint64_t(tensors_.size()));
  put(header, kv_count_);
  header += kv_;
  for (const auto& t : tensors_) {
    put_string(header, t.name);
    put(header, uint32_t(t.ne.size()));
    for (int64_t n : t.ne) put(header, uint64_t(n));
    put(header, static_cast<uint32_t>(t.type));
    put(header, t.offset);
  }
  header.resize(align(header.size()), '\0');
  const uint64_t data_start = header.size();

  std::map<std::string, const Tensor*> by_name;
  for (const auto& t : tensors_) by_name[t.name] = &t;
  write_file_atomically(path, "GGUF file", [&](int fd) {
    // Size the file first (padding included): a full disk fails at once, holes read as zeros.
    if (::ftruncate(fd, static_cast<off_t>(data_start + data_size_)) != 0)
      throw Error("cannot size the GGUF file: " + errno_text(errno), path.string());
    pwrite_all(fd, header.data(), header.size(), 0, path);
    std::map<std::string, uint64_t> written;
    produce([&](const std::string& name, std::span<const std::byte> bytes, uint64_t offset) {
      auto it = by_name.find(name);
      UPCYCLE_CHECK(it != by_name.end(), "undeclared GGUF tensor " + name);
      const Tensor& t = *it->second;
      UPCYCLE_CHECK(offset <= t.nbytes && bytes.size() <= t.nbytes - offset, "write past GGUF tensor " + name);
      pwrite_all(fd, bytes.data(), bytes.size(), data_start + t.offset + offset, path);
      written[name] += bytes.size();
    });
    for (const auto& t : tensors_)
      UPCYCLE_CHECK(written[t.name] == t.nbytes, "GGUF tensor " + t.name + " was not written completely");
  });
}

}  // namespace upcycle
