// Opening and comparing dense sources; bounded fp32 reads, raw 2-D reads (see source_models.h).
#include "recipes/source_models.h"

#include <algorithm>
#include <sstream>

#include "core/error.h"
#include "core/file_util.h"

namespace upcycle::recipes {
namespace {

// The architecture-defining keys, as "key=value" strings in a fixed order.
std::vector<std::pair<std::string, std::string>> arch_keys(const ModelConfig& c) {
  auto s = [](auto v) {
    std::ostringstream o;
    o << v;
    return o.str();
  };
  return {{"model_type", std::string(family_model_type(c.family))},
          {"vocab_size", s(c.vocab_size)},
          {"hidden_size", s(c.hidden_size)},
          {"intermediate_size", s(c.intermediate_size)},
          {"num_hidden_layers", s(c.num_hidden_layers)},
          {"num_attention_heads", s(c.num_attention_heads)},
          {"num_key_value_heads", s(c.num_key_value_heads)},
          {"head_dim", s(c.head_dim)},
          {"tie_word_embeddings", c.tie_word_embeddings ? "true" : "false"},
          {"attention biases", std::string(c.qkv_bias ? "qkv" : "") + (c.o_bias ? "+o" : "")},
          {"q_norm/k_norm", c.qk_norm ? "present" : "absent"},
          {"hidden_act", c.hidden_act}};
}

void check_same_architecture(const SourceModel& base, const SourceModel& other) {
  auto a = arch_keys(base.config), b = arch_keys(other.config);
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].second != b[i].second)
      throw Error("sources do not share an architecture: config key '" + a[i].first + "' is " + a[i].second + " in " +
                      base.dir.string() + " but " + b[i].second + " here",
                  (other.dir / "config.json").string());
  for (const auto& w : base.table.weights()) {
    auto [fa, ta] = base.tensor(w.name);
    auto [fb, tb] = other.tensor(w.name);
    if (ta->shape != tb->shape)
      throw Error("sources do not share an architecture: tensor " + w.name + " has shape " + shape_string(tb->shape) +
                      ", " + shape_string(ta->shape) + " in " + base.dir.string(),
                  other.dir.string());
  }
}

}  // namespace

std::pair<const SafetensorsFile*, const TensorInfo*> SourceModel::tensor(std::string_view name) const {
  const WeightLocation* loc = table.locate(name);
  const TensorRef* ref = loc ? checkpoint.find(loc->tensor) : nullptr;
  if (!ref) throw Error("checkpoint has no tensor " + std::string(name), dir.string());
  UPCYCLE_CHECK(loc->element_offset == 0, "dense source tensors are never fused");
  return {ref->file, ref->info};
}

std::vector<SourceModel> open_sources(const std::vector<std::filesystem::path>& dirs) {
  UPCYCLE_CHECK(!dirs.empty(), "convert needs at least one source");
  std::vector<SourceModel> out;
  for (const auto& dir : dirs) {
    ModelConfig config = read_model_config(dir);
    if (config.is_moe())
      throw Error("is already an MoE model (" + std::string(family_model_type(config.family)) +
                      "); convert takes a dense llama, mistral, qwen2 or qwen3 checkpoint",
                  (dir / "config.json").string());
    Checkpoint ckpt = Checkpoint::open(dir);
    std::map<std::string, Shape, std::less<>> shapes;
    for (const auto& [name, ref] : ckpt.tensors()) shapes[name] = ref.info->shape;
    WeightTable table = WeightTable::build(config, shapes);
    if (!table.ok())
      throw Error("checkpoint does not match its config: " + table.problems()[0] +
                      (table.problems().size() > 1 ? " (and " + std::to_string(table.problems().size() - 1) + " more; see upcycle inspect)" : ""),
                  dir.string());
    for (const auto& [name, ref] : ckpt.tensors())
      if (!dtype_is_float(ref.info->dtype))
        throw Error("tensor " + name + " has dtype " + std::string(dtype_name(ref.info->dtype)) + "; convert reads F32, BF16 and F16",
                    dir.string());
    out.push_back({dir, std::move(config), std::move(ckpt), std::move(table)});
  }
  for (size_t i = 1; i < out.size(); ++i) check_same_architecture(out[0], out[i]);
  return out;
}

void read_f32(const SourceModel& source, std::string_view name, uint64_t first, uint64_t n, float* out) {
  auto [file, info] = source.tensor(name);
  UPCYCLE_CHECK(first + n <= info->numel(), "read_f32 past the end of " + std::string(name));
  const size_t elem = dtype_size(info->dtype);
  constexpr uint64_t kChunk = uint64_t{1} << 20;  // elements per pread
  std::vector<std::byte> raw(info->dtype == DType::kF32 ? 0 : size_t(std::min(n, kChunk)) * elem);
  for (uint64_t done = 0; done < n; done += kChunk) {
    const uint64_t count = std::min(kChunk, n - done);
    const uint64_t offset = file->data_offset() + info->begin + (first + done) * elem;
    if (info->dtype == DType::kF32) {
      pread_all(file->fd(), out + done, count * elem, offset, file->path());
    } else {
      pread_all(file->fd(), raw.data(), count * elem, offset, file->path());
      convert_floats(raw.data(), info->dtype, out + done, DType::kF32, size_t(count));
    }
  }
}

std::vector<float> read_f32(const SourceModel& source, std::string_view name) {
  auto [file, info] = source.tensor(name);
  std::vector<float> out(size_t(info->numel()));
  read_f32(source, name, 0, info->numel(), out.data());
  return out;
}

RawMatrix read_raw(const SourceModel& source, std::string_view name) {
  auto [file, info] = source.tensor(name);
  UPCYCLE_CHECK(info->shape.size() == 2, "read_raw of a tensor that is not 2-D: " + std::string(name));
  RawMatrix m{info->dtype, info->shape[0], info->shape[1], std::vector<std::byte>(size_t(info->nbytes()))};
  pread_all(file->fd(), m.bytes.data(), m.bytes.size(), file->data_offset() + info->begin, file->path());
  return m;
}

}  // namespace upcycle::recipes
