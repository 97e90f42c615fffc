// safetensors header validation and lazily mapped tensor access (see safetensors.h).
// The header goes into nlohmann::json (std::map objects) rather than the ordered Json: ordered_json
// inserts keys by linear search, which makes a header with 100k tensors quadratic, and tensor order
// here comes from the offsets anyway. nlohmann silently keeps the last of duplicate keys, so a second,
// SAX pass tracks the keys of every open object and rejects repeats.
// Every size computation is checked: offsets are u64 and a hostile header must fail with an Error,
// never wrap around.
#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <nlohmann/json.hpp>
#include <tuple>
#include <unordered_set>
#include <utility>

#include "core/error.h"
#include "core/file_util.h"

namespace upcycle {
namespace {

using HeaderJson = nlohmann::json;

[[noreturn]] void tensor_error(const std::string& name, const std::string& problem, const std::string& file) {
  throw Error("tensor '" + name + "' " + problem, file);
}

// Finds repeated keys, which nlohmann's DOM parser would silently collapse to the last value. Runs as
// a second pass over text that already parsed, so it meets no syntax errors. (A parser callback could
// do it in one pass, but nlohmann's callback parser rescans the parent object after each nested object
// ends: quadratic in the number of tensors, minutes for 100k.)
class DuplicateKeyCheck final : public nlohmann::json_sax<HeaderJson> {
 public:
  explicit DuplicateKeyCheck(const std::string& file) : file_(file) {}
  bool start_object(std::size_t) override {
    open_objects_.emplace_back();
    return true;
  }
  bool end_object() override {
    open_objects_.pop_back();
    return true;
  }
  bool key(string_t& key) override {
    if (!open_objects_.back().insert(key).second) throw Error("header has duplicate key '" + key + "'", file_);
    return true;
  }
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&, const HeaderJson::exception&) override { return false; }

 private:
  const std::string& file_;
  std::vector<std::unordered_set<std::string>> open_objects_;  // keys seen so far in each open object
};

HeaderJson parse_header_json(std::string_view text, const std::string& file) {
  HeaderJson json;
  try {
    json = HeaderJson::parse(text.begin(), text.end());
  } catch (const HeaderJson::exception& e) {  // parse_error, or out_of_range for numbers like 1e999
    std::string detail = e.what();
    // nlohmann prefixes "[json.exception.parse_error.101] "; the byte position is the useful part.
    if (auto pos = detail.find("] "); pos != std::string::npos) detail = detail.substr(pos + 2);
    throw Error("header is not valid JSON: " + detail, file);
  }
  DuplicateKeyCheck check(file);
  HeaderJson::sax_parse(text.begin(), text.end(), &check);
  return json;
}

DType parse_dtype(const std::string& name, const HeaderJson& value, const std::string& file) {
  if (!value.is_string()) tensor_error(name, "has a dtype that is not a string", file);
  const auto& text = value.get_ref<const std::string&>();
  if (auto dtype = dtype_from_name(text)) return *dtype;
  if (dtype_is_known_unsupported(text))
    tensor_error(
        name, "has unsupported dtype " + text + " (FP8/low-bit checkpoints are not supported; convert to bf16 first)",
        file);
  tensor_error(name, "has unknown dtype " + text, file);
}

Shape parse_shape(const std::string& name, const HeaderJson& value, const std::string& file) {
  Shape shape;
  bool valid = value.is_array();
  for (size_t i = 0; valid && i < value.size(); ++i) {
    // Only integers ≥ 0 that fit u64 parse as number_unsigned: not -1, 2.0, 1e3 or 2^64.
    valid = value[i].is_number_unsigned() && value[i].get<uint64_t>() <= uint64_t(INT64_MAX);
    if (valid) shape.push_back(value[i].get<int64_t>());
  }
  if (!valid) tensor_error(name, "has an invalid shape (expected an array of non-negative integers)", file);
  return shape;
}

void parse_offsets(const std::string& name, const HeaderJson& value, TensorInfo& info, const std::string& file) {
  if (!value.is_array() || value.size() != 2 || !value[0].is_number_unsigned() || !value[1].is_number_unsigned() ||
      value[0].get<uint64_t>() > value[1].get<uint64_t>())
    tensor_error(name, "has invalid data_offsets (expected [begin, end] with 0 <= begin <= end)", file);
  info.begin = value[0].get<uint64_t>();
  info.end = value[1].get<uint64_t>();
}

TensorInfo parse_tensor(const std::string& name, const HeaderJson& entry, uint64_t data_size, const std::string& file) {
  if (!entry.is_object()) tensor_error(name, "has a header entry that is not a JSON object", file);
  for (const auto& [key, value] : entry.items())
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      tensor_error(name, "has unknown field '" + key + "'", file);
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!entry.contains(field)) tensor_error(name, std::string("has no ") + field, file);

  TensorInfo info;
  info.name = name;
  info.dtype = parse_dtype(name, entry.at("dtype"), file);
  info.shape = parse_shape(name, entry.at("shape"), file);
  parse_offsets(name, entry.at("data_offsets"), info, file);

  uint64_t needed = dtype_size(info.dtype);
  for (int64_t dim : info.shape)
    if (__builtin_mul_overflow(needed, uint64_t(dim), &needed))
      tensor_error(name, "has shape " + shape_string(info.shape) + " whose byte size overflows 64 bits", file);
  if (info.nbytes() != needed)
    tensor_error(name,
                 "has " + std::to_string(info.nbytes()) + " bytes but shape " + shape_string(info.shape) + " of " +
                     std::string(dtype_name(info.dtype)) + " needs " + std::to_string(needed),
                 file);
  if (info.end > data_size)
    tensor_error(name,
                 "has data_offsets [" + std::to_string(info.begin) + ", " + std::to_string(info.end) +
                     "] past the end of the file (the data section has " + std::to_string(data_size) + " bytes)",
                 file);
  return info;
}

std::map<std::string, std::string> parse_metadata(const HeaderJson& value, const std::string& file) {
  if (value.is_null()) return {};  // the reference reader treats null as absent
  if (!value.is_object()) throw Error("header __metadata__ is not a JSON object", file);
  std::map<std::string, std::string> metadata;
  for (const auto& [key, entry] : value.items()) {
    if (!entry.is_string()) throw Error("header __metadata__ value for '" + key + "' is not a string", file);
    metadata.emplace(key, entry.get<std::string>());
  }
  return metadata;
}

// Tensors sorted by offset must cover [0, data_size) exactly: each starts where the previous ended.
void check_tiling(const std::vector<TensorInfo>& tensors, uint64_t data_size, const std::string& file) {
  uint64_t expected = 0;
  const TensorInfo* previous = nullptr;
  for (const auto& t : tensors) {
    if (t.begin < expected)
      throw Error("tensors '" + previous->name + "' and '" + t.name + "' overlap ('" + t.name + "' starts at byte " +
                      std::to_string(t.begin) + ", '" + previous->name + "' ends at byte " + std::to_string(expected) +
                      ")",
                  file);
    if (t.begin > expected)
      throw Error(std::to_string(t.begin - expected) + " bytes of the data section before tensor '" + t.name +
                      "' (from byte " + std::to_string(expected) + ") belong to no tensor",
                  file);
    expected = t.end;
    previous = &t;
  }
  if (expected != data_size)
    throw Error(
        std::to_string(data_size - expected) + " bytes at the end of the data section belong to no tensor" +
            (previous ? " (the last tensor '" + previous->name + "' ends at byte " + std::to_string(expected) + ")"
                      : std::string(" (the header lists no tensors)")),
        file);
}

}  // namespace

SafetensorsHeader parse_safetensors_header(std::string_view json_text, uint64_t data_size, const std::string& file) {
  HeaderJson json = parse_header_json(json_text, file);
  if (!json.is_object()) throw Error("header is not a JSON object", file);
  SafetensorsHeader header;
  for (const auto& [key, value] : json.items()) {
    if (key == "__metadata__")
      header.metadata = parse_metadata(value, file);
    else
      header.tensors.push_back(parse_tensor(key, value, data_size, file));
  }
  // Zero-size tensors may share an offset with their neighbour; the name makes the order total.
  std::sort(header.tensors.begin(), header.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  check_tiling(header.tensors, data_size, file);
  return header;
}

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  const std::string file = path.string();
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) throw Error("cannot open safetensors file: " + errno_text(errno), file);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw Error("cannot stat safetensors file: " + errno_text(errno), file);
  if (S_ISDIR(st.st_mode)) throw Error("expected a safetensors file but this is a directory", file);
  if (!S_ISREG(st.st_mode)) throw Error("expected a safetensors file but this is not a regular file", file);

  const auto size = static_cast<uint64_t>(st.st_size);
  if (size < 8) throw Error("file is too short to be safetensors (" + std::to_string(size) + " bytes)", file);
  unsigned char length_bytes[8];
  pread_all(fd.get(), length_bytes, 8, 0, path);
  uint64_t header_length = 0;
  for (int i = 7; i >= 0; --i) header_length = (header_length << 8) | length_bytes[i];
  if (header_length > kMaxSafetensorsHeader)
    throw Error("header length " + std::to_string(header_length) + " exceeds the safetensors limit of " +
                    std::to_string(kMaxSafetensorsHeader) + " bytes",
                file);
  if (header_length > size - 8)
    throw Error("header length " + std::to_string(header_length) + " runs past the end of the file (" +
                    std::to_string(size) + " bytes)",
                file);
  std::string text(header_length, '\0');
  pread_all(fd.get(), text.data(), header_length, 8, path);

  SafetensorsFile result;
  result.header_ = parse_safetensors_header(text, size - 8 - header_length, file);
  for (size_t i = 0; i < result.header_.tensors.size(); ++i) result.index_.emplace(result.header_.tensors[i].name, i);
  result.path_ = path;
  result.file_size_ = size;
  result.data_offset_ = 8 + header_length;
  result.fd_ = fd.release();
  return result;
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& other) noexcept
    : path_(std::move(other.path_)),
      header_(std::move(other.header_)),
      index_(std::move(other.index_)),
      file_size_(other.file_size_),
      data_offset_(other.data_offset_),
      fd_(std::exchange(other.fd_, -1)),
      map_(std::exchange(other.map_, nullptr)) {}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& other) noexcept {
  if (this != &other) {
    // Swapping hands this object's old mapping and descriptor to `other`, whose destructor releases them.
    std::swap(path_, other.path_);
    std::swap(header_, other.header_);
    std::swap(index_, other.index_);
    std::swap(file_size_, other.file_size_);
    std::swap(data_offset_, other.data_offset_);
    std::swap(fd_, other.fd_);
    std::swap(map_, other.map_);
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, file_size_);
  if (fd_ >= 0) ::close(fd_);
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

std::span<const std::byte> SafetensorsFile::data(const TensorInfo& tensor) const {
  UPCYCLE_CHECK(tensor.begin <= tensor.end && tensor.end <= file_size_ - data_offset_,
                "tensor '" + tensor.name + "' is not from " + path_.string());
  // Threads may ask for data concurrently: the first mapping published wins, a losing one is undone.
  std::atomic_ref<void*> map(map_);
  void* base = map.load(std::memory_order_acquire);
  if (!base) {
    void* fresh = ::mmap(nullptr, file_size_, PROT_READ, MAP_SHARED, fd_, 0);
    if (fresh == MAP_FAILED)
      throw Error("cannot map safetensors file into memory: " + errno_text(errno), path_.string());
    if (map.compare_exchange_strong(base, fresh, std::memory_order_acq_rel))
      base = fresh;
    else
      ::munmap(fresh, file_size_);
  }
  return {static_cast<const std::byte*>(base) + data_offset_ + tensor.begin, tensor.nbytes()};
}

}  // namespace upcycle
