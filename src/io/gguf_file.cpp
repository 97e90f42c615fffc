// GGUF parsing and validation (see gguf_file.h). The file is mapped read-only and parsed with a
// bounds-checked cursor; every size is computed with overflow checks because a hostile header must
// fail with an Error, never wrap around. Counts are checked against the bytes left before anything is
// reserved for them: a string needs ≥ 8 bytes, a key/value ≥ 12, a tensor info ≥ 24.
#include "io/gguf_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "core/error.h"
#include "core/file_util.h"

namespace upcycle {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr int kMaxDims = 4;              // GGML_MAX_DIMS

struct TypeSize {
  GgufType type;
  std::string_view name;
  uint64_t size;  // 0: variable (string, array)
};
constexpr TypeSize kTypeSizes[] = {
    {GgufType::kU8, "UINT8", 1},    {GgufType::kI8, "INT8", 1},         {GgufType::kU16, "UINT16", 2},
    {GgufType::kI16, "INT16", 2},   {GgufType::kU32, "UINT32", 4},      {GgufType::kI32, "INT32", 4},
    {GgufType::kF32, "FLOAT32", 4}, {GgufType::kBool, "BOOL", 1},       {GgufType::kString, "STRING", 0},
    {GgufType::kArray, "ARRAY", 0}, {GgufType::kU64, "UINT64", 8},      {GgufType::kI64, "INT64", 8},
    {GgufType::kF64, "FLOAT64", 8},
};

const TypeSize* type_size(uint32_t id) {
  for (const auto& t : kTypeSizes)
    if (static_cast<uint32_t>(t.type) == id) return &t;
  return nullptr;
}

bool is_integer(GgufType t) {
  switch (t) {
    case GgufType::kU8: case GgufType::kI8: case GgufType::kU16: case GgufType::kI16:
    case GgufType::kU32: case GgufType::kI32: case GgufType::kU64: case GgufType::kI64: return true;
    default: return false;
  }
}

bool is_signed(GgufType t) {
  return t == GgufType::kI8 || t == GgufType::kI16 || t == GgufType::kI32 || t == GgufType::kI64;
}

bool add_overflows(uint64_t a, uint64_t b, uint64_t& out) { return __builtin_add_overflow(a, b, &out); }
bool mul_overflows(uint64_t a, uint64_t b, uint64_t& out) { return __builtin_mul_overflow(a, b, &out); }

}  // namespace

std::string_view gguf_type_name(GgufType type) {
  const TypeSize* t = type_size(static_cast<uint32_t>(type));
  return t ? t->name : "UNKNOWN";
}

uint64_t GgufTensorInfo::numel() const {
  uint64_t n = 1;
  for (int64_t d : ne) n *= static_cast<uint64_t>(d);
  return n;
}

uint64_t GgufTensorInfo::rows() const {
  return row_length() == 0 ? 0 : numel() / static_cast<uint64_t>(row_length());
}

uint64_t GgufTensorInfo::row_bytes() const {
  const GgmlTypeInfo& info = ggml_type_info(type);
  return static_cast<uint64_t>(row_length()) / info.block_size * info.block_bytes;
}

Shape GgufTensorInfo::hf_shape() const { return Shape(ne.rbegin(), ne.rend()); }

// Reads one GGUF header from the mapped bytes into a GgufFile; `context_` names what is being read
// so that a short read says which key or tensor the file ends in.
class GgufParser {
 public:
  GgufParser(GgufFile& f) : f_(f), file_(f.path_.string()) {}

  void parse() {
    if (f_.file_size_ < 24) fail("file is too short to be GGUF (" + std::to_string(f_.file_size_) + " bytes)");
    context_ = "the header";
    const uint32_t magic = u32();
    if (magic != kMagic) fail("not a GGUF file: bad magic (expected \"GGUF\" at byte 0)");
    f_.version_ = u32();
    if (f_.version_ == 1) fail("GGUF version 1 is not supported (this reader reads versions 2 and 3)");
    if (f_.version_ > 3) {
      // A big-endian file reads its version byte-swapped: 3 becomes 0x03000000.
      const bool swapped = (f_.version_ & 0xffffu) == 0 && (__builtin_bswap32(f_.version_) <= 3);
      fail(swapped ? std::string("big-endian GGUF files are not supported")
                   : "GGUF version " + std::to_string(f_.version_) + " is not supported (this reader reads versions 2 and 3)");
    }
    const uint64_t tensor_count = u64();
    const uint64_t kv_count = u64();
    check_count(kv_count, 12, "metadata key/value pairs");
    for (uint64_t i = 0; i < kv_count; ++i) read_kv(i);
    read_alignment();
    check_count(tensor_count, 24, "tensor infos");
    for (uint64_t i = 0; i < tensor_count; ++i) read_tensor_info(i);
    uint64_t data = 0;
    if (add_overflows(pos_, f_.alignment_ - 1, data)) fail("data section offset overflows");
    f_.data_offset_ = data / f_.alignment_ * f_.alignment_;
    check_tensor_data();
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { throw Error(what, file_); }

  void need(uint64_t n) const {
    uint64_t end = 0;
    if (add_overflows(pos_, n, end) || end > f_.file_size_)
      fail("unexpected end of file reading " + context_ + " (needs " + std::to_string(n) + " bytes at offset " +
           std::to_string(pos_) + ", the file has " + std::to_string(f_.file_size_) + "): truncated or corrupt");
  }
  template <typename T>
  T read() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, f_.map_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  uint32_t u32() { return read<uint32_t>(); }
  uint64_t u64() { return read<uint64_t>(); }
  std::string str() {
    const uint64_t n = u64();
    need(n);
    std::string s(reinterpret_cast<const char*>(f_.map_ + pos_), n);
    pos_ += n;
    return s;
  }
  void skip(uint64_t n) {
    need(n);
    pos_ += n;
  }
  // `count` items of at least `min_bytes` each must fit in what is left of the file.
  void check_count(uint64_t count, uint64_t min_bytes, const std::string& what) const {
    if (count > (f_.file_size_ - std::min(pos_, f_.file_size_)) / min_bytes)
      fail("the header claims " + std::to_string(count) + " " + what + ", more than the file's " +
           std::to_string(f_.file_size_) + " bytes can hold: truncated or corrupt");
  }

  GgufType value_type(const std::string& key, bool element) {
    const uint32_t id = u32();
    const TypeSize* t = type_size(id);
    if (!t) fail("key '" + key + "' has unknown " + (element ? "array element " : "") + "type " + std::to_string(id));
    if (element && t->type == GgufType::kArray) fail("key '" + key + "' is an array of arrays, which upcycle does not read");
    return t->type;
  }

  void read_kv(uint64_t index) {
    context_ = "metadata key #" + std::to_string(index);
    std::string key = str();
    context_ = "key '" + key + "'";
    if (f_.values_.count(key)) fail("duplicate metadata key '" + key + "'");
    GgufValue v;
    v.type = value_type(key, false);
    if (v.type == GgufType::kArray) {
      v.element_type = value_type(key, true);
      v.count = u64();
      v.offset = pos_;
      const uint64_t fixed = type_size(static_cast<uint32_t>(v.element_type))->size;
      if (fixed) {
        uint64_t bytes = 0;
        if (mul_overflows(v.count, fixed, bytes)) fail("key '" + key + "' has an impossible array length");
        skip(bytes);
      } else {
        check_count(v.count, 8, "strings in key '" + key + "'");
        for (uint64_t i = 0; i < v.count; ++i) skip(u64());
      }
    } else {
      v.offset = pos_;
      if (v.type == GgufType::kString) {
        skip(u64());
        v.offset += 8;
      } else {
        skip(type_size(static_cast<uint32_t>(v.type))->size);
      }
      if (v.type == GgufType::kBool && static_cast<uint8_t>(f_.map_[v.offset]) > 1)
        fail("key '" + key + "' is a BOOL holding " + std::to_string(static_cast<uint8_t>(f_.map_[v.offset])) + " (must be 0 or 1)");
    }
    v.size = pos_ - v.offset;
    f_.key_order_.push_back(key);
    f_.values_.emplace(std::move(key), v);
  }

  void read_alignment() {
    const GgufValue* v = f_.find("general.alignment");
    if (!v) return;
    if (v->type != GgufType::kU32) fail("key 'general.alignment' must be a UINT32, not " + std::string(gguf_type_name(v->type)));
    uint32_t a;
    std::memcpy(&a, f_.map_ + v->offset, 4);
    if (a == 0 || (a & (a - 1)) != 0) fail("key 'general.alignment' is " + std::to_string(a) + ", not a power of two");
    f_.alignment_ = a;
  }

  void read_tensor_info(uint64_t index) {
    context_ = "tensor info #" + std::to_string(index);
    GgufTensorInfo t;
    t.name = str();
    context_ = "the info of tensor '" + t.name + "'";
    auto bad = [&](const std::string& what) { fail("tensor '" + t.name + "' " + what); };
    if (f_.tensor_index_.count(t.name)) fail("duplicate tensor name '" + t.name + "'");
    const uint32_t dims = u32();
    if (dims > kMaxDims) bad("has " + std::to_string(dims) + " dimensions (GGUF allows at most 4)");
    uint64_t numel = 1;
    for (uint32_t d = 0; d < dims; ++d) {
      const uint64_t n = u64();
      if (n > uint64_t(INT64_MAX) || mul_overflows(numel, n, numel) || numel > uint64_t(INT64_MAX))
        bad("has an impossible shape");
      t.ne.push_back(static_cast<int64_t>(n));
    }
    const uint32_t type_id = u32();
    const GgmlTypeInfo* info = ggml_type_info(type_id);
    if (!info) bad("has unknown ggml type " + std::to_string(type_id));
    t.type = info->type;
    t.offset = u64();
    if (t.row_length() % info->block_size != 0)
      bad("has rows of " + std::to_string(t.row_length()) + " elements, not a multiple of " + std::string(info->name) +
          "'s block of " + std::to_string(info->block_size));
    if (mul_overflows(numel / info->block_size, info->block_bytes, t.nbytes)) bad("has an impossible byte size");
    if (t.offset % f_.alignment_ != 0)
      bad("starts at data offset " + std::to_string(t.offset) + ", not a multiple of the alignment " +
          std::to_string(f_.alignment_));
    f_.tensor_index_.emplace(t.name, f_.tensors_.size());
    f_.tensors_.push_back(std::move(t));
  }

  void check_tensor_data() {
    const uint64_t data_size = f_.file_size_ > f_.data_offset_ ? f_.file_size_ - f_.data_offset_ : 0;
    std::vector<const GgufTensorInfo*> by_offset;
    for (const auto& t : f_.tensors_) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
    uint64_t previous_end = 0;
    const GgufTensorInfo* previous = nullptr;
    for (const GgufTensorInfo* t : by_offset) {
      uint64_t end = 0;
      if (add_overflows(t->offset, t->nbytes, end) || end > data_size)
        fail("tensor '" + t->name + "' needs data bytes [" + std::to_string(t->offset) + ", " +
             std::to_string(t->offset + t->nbytes) + ") but the data section has " + std::to_string(data_size) +
             " bytes: truncated or corrupt");
      if (previous && t->offset < previous_end)
        fail("tensor '" + t->name + "' overlaps tensor '" + previous->name + "' in the data section: corrupt");
      previous_end = end;
      previous = t;
    }
  }

  GgufFile& f_;
  std::string file_;
  uint64_t pos_ = 0;
  std::string context_;
};

GgufFile GgufFile::open(const std::filesystem::path& path) {
  GgufFile f;
  f.path_ = path;
  f.fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd_ < 0) throw Error("cannot open GGUF file: " + errno_text(errno), path.string());
  struct stat st {};
  if (::fstat(f.fd_, &st) != 0) throw Error("cannot stat GGUF file: " + errno_text(errno), path.string());
  if (S_ISDIR(st.st_mode)) throw Error("expected a GGUF file, found a directory", path.string());
  f.file_size_ = static_cast<uint64_t>(st.st_size);
  if (f.file_size_ > 0) {
    void* m = ::mmap(nullptr, f.file_size_, PROT_READ, MAP_SHARED, f.fd_, 0);
    if (m == MAP_FAILED) throw Error("cannot map GGUF file: " + errno_text(errno), path.string());
    f.map_ = static_cast<const std::byte*>(m);
  }
  GgufParser(f).parse();
  return f;
}

GgufFile::GgufFile(GgufFile&& o) noexcept { *this = std::move(o); }

GgufFile& GgufFile::operator=(GgufFile&& o) noexcept {
  if (this == &o) return *this;
  close();
  path_ = std::move(o.path_);
  fd_ = std::exchange(o.fd_, -1);
  map_ = std::exchange(o.map_, nullptr);
  file_size_ = o.file_size_;
  version_ = o.version_;
  alignment_ = o.alignment_;
  data_offset_ = o.data_offset_;
  key_order_ = std::move(o.key_order_);
  values_ = std::move(o.values_);
  tensors_ = std::move(o.tensors_);
  tensor_index_ = std::move(o.tensor_index_);
  return *this;
}

GgufFile::~GgufFile() { close(); }

void GgufFile::close() {
  if (map_) ::munmap(const_cast<std::byte*>(map_), file_size_);
  if (fd_ >= 0) ::close(fd_);
  map_ = nullptr;
  fd_ = -1;
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = values_.find(key);
  return it == values_.end() ? nullptr : &it->second;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

// The integer at p of type t, as a signed 128-bit-safe pair: returns false when it does not fit int64
// (only a UINT64 above INT64_MAX), so callers can range-check.
int64_t load_int(const std::byte* p, GgufType t, bool& negative, uint64_t& magnitude) {
  int64_t s = 0;
  uint64_t u = 0;
  switch (t) {
    case GgufType::kU8: { uint8_t v; std::memcpy(&v, p, 1); u = v; break; }
    case GgufType::kI8: { int8_t v; std::memcpy(&v, p, 1); s = v; break; }
    case GgufType::kU16: { uint16_t v; std::memcpy(&v, p, 2); u = v; break; }
    case GgufType::kI16: { int16_t v; std::memcpy(&v, p, 2); s = v; break; }
    case GgufType::kU32: { uint32_t v; std::memcpy(&v, p, 4); u = v; break; }
    case GgufType::kI32: { int32_t v; std::memcpy(&v, p, 4); s = v; break; }
    case GgufType::kU64: { std::memcpy(&u, p, 8); break; }
    case GgufType::kI64: { std::memcpy(&s, p, 8); break; }
    default: UPCYCLE_CHECK(false, "load_int on a non-integer");
  }
  if (is_signed(t)) {
    negative = s < 0;
    magnitude = negative ? uint64_t(0) - static_cast<uint64_t>(s) : static_cast<uint64_t>(s);
    return s;
  }
  negative = false;
  magnitude = u;
  return static_cast<int64_t>(u);
}

}  // namespace

std::optional<uint64_t> GgufFile::get_uint(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (!is_integer(v->type))
    throw Error("key '" + std::string(key) + "' must be an integer, not " + std::string(gguf_type_name(v->type)), path_.string());
  bool negative = false;
  uint64_t magnitude = 0;
  load_int(map_ + v->offset, v->type, negative, magnitude);
  if (negative) throw Error("key '" + std::string(key) + "' must not be negative", path_.string());
  return magnitude;
}

std::optional<double> GgufFile::get_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type == GgufType::kF32) {
    float f;
    std::memcpy(&f, map_ + v->offset, 4);
    return f;
  }
  if (v->type == GgufType::kF64) {
    double d;
    std::memcpy(&d, map_ + v->offset, 8);
    return d;
  }
  throw Error("key '" + std::string(key) + "' must be a FLOAT32 or FLOAT64, not " + std::string(gguf_type_name(v->type)),
              path_.string());
}

std::optional<bool> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::kBool)
    throw Error("key '" + std::string(key) + "' must be a BOOL, not " + std::string(gguf_type_name(v->type)), path_.string());
  return static_cast<uint8_t>(map_[v->offset]) != 0;
}

std::optional<std::string> GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::kString)
    throw Error("key '" + std::string(key) + "' must be a STRING, not " + std::string(gguf_type_name(v->type)), path_.string());
  return std::string(reinterpret_cast<const char*>(map_ + v->offset), v->size);
}

std::vector<std::string> GgufFile::string_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) throw Error("missing metadata key '" + std::string(key) + "'", path_.string());
  if (v->type != GgufType::kArray || v->element_type != GgufType::kString)
    throw Error("key '" + std::string(key) + "' must be an array of strings", path_.string());
  std::vector<std::string> out;
  out.reserve(v->count);  // validated at open: each element is backed by ≥ 8 bytes of the file
  uint64_t pos = v->offset;
  for (uint64_t i = 0; i < v->count; ++i) {
    uint64_t n;
    std::memcpy(&n, map_ + pos, 8);
    out.emplace_back(reinterpret_cast<const char*>(map_ + pos + 8), n);
    pos += 8 + n;
  }
  return out;
}

std::vector<int64_t> GgufFile::int_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) throw Error("missing metadata key '" + std::string(key) + "'", path_.string());
  if (v->type != GgufType::kArray || !is_integer(v->element_type))
    throw Error("key '" + std::string(key) + "' must be an array of integers", path_.string());
  const uint64_t size = type_size(static_cast<uint32_t>(v->element_type))->size;
  std::vector<int64_t> out;
  out.reserve(v->count);  // validated at open: count × size bytes are in the file
  for (uint64_t i = 0; i < v->count; ++i) {
    bool negative = false;
    uint64_t magnitude = 0;
    const int64_t x = load_int(map_ + v->offset + i * size, v->element_type, negative, magnitude);
    if (!negative && magnitude > uint64_t(INT64_MAX))
      throw Error("key '" + std::string(key) + "' holds a value above 2^63", path_.string());
    out.push_back(x);
  }
  return out;
}

std::string GgufFile::describe(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return "(absent)";
  switch (v->type) {
    case GgufType::kString: return "'" + *get_string(key) + "'";
    case GgufType::kArray: return "[" + std::to_string(v->count) + " × " + std::string(gguf_type_name(v->element_type)) + "]";
    case GgufType::kF32: case GgufType::kF64: return std::to_string(*get_float(key));
    case GgufType::kBool: return *get_bool(key) ? "true" : "false";
    default: {
      bool negative = false;
      uint64_t magnitude = 0;
      load_int(map_ + v->offset, v->type, negative, magnitude);
      return (negative ? "-" : "") + std::to_string(magnitude);
    }
  }
}

void GgufFile::read_tensor_bytes(const GgufTensorInfo& tensor, uint64_t byte_offset, uint64_t size, std::byte* dst) const {
  UPCYCLE_CHECK(byte_offset <= tensor.nbytes && size <= tensor.nbytes - byte_offset, "read past a GGUF tensor");
  // pread rather than the map: pages read once are not kept mapped, so the resident set stays at
  // the caller's buffer however large the model is.
  pread_all(fd_, dst, size, data_offset_ + tensor.offset + byte_offset, path_);
}

}  // namespace upcycle
