// optimizer.safetensors reading and writing, and the dense → upcycled moment broadcast (contract in
// optimizer_state.h). Moments are written straight from the optimizer's flat buffers (one pwrite per
// tensor) and read back with one copy per tensor; nothing else is buffered.
// Dense counterparts are found by role and layer, with the dense FFN's canonical names taken from
// expected_weights() of a dense config, so they follow weight_table.cpp rather than a second spelling.
#include "train/optimizer_state.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <map>
#include <span>
#include <utility>

#include "core/error.h"
#include "io/checkpoint_writer.h"
#include "io/model_config.h"
#include "io/safetensors.h"

namespace upcycle::train {
namespace {

constexpr std::string_view kExpAvg = "exp_avg.";
constexpr std::string_view kExpAvgSq = "exp_avg_sq.";

std::string decimal(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest text that reads back exactly
  return std::string(buf, r.ptr);
}

int64_t parse_step(const SafetensorsFile& file) {
  const std::string where = file.path().string();
  auto it = file.metadata().find("step");
  if (it == file.metadata().end()) throw Error("not an optimizer state: no \"step\" in __metadata__", where);
  int64_t step = -1;
  const std::string& text = it->second;
  const auto r = std::from_chars(text.data(), text.data() + text.size(), step);
  if (r.ec != std::errc() || r.ptr != text.data() + text.size() || step < 0)
    throw Error("not an optimizer state: metadata step '" + text + "' is not a non-negative integer", where);
  return step;
}

// The fp32 tensor `name` with `shape`, or an Error naming the file.
const TensorInfo& expect_tensor(const SafetensorsFile& file, const std::string& name, const Shape& shape) {
  const TensorInfo* info = file.find(name);
  const std::string where = file.path().string();
  if (!info) throw Error("optimizer state has no tensor " + name, where);
  if (info->dtype != DType::kF32) throw Error("optimizer state tensor " + name + " is not F32", where);
  if (info->shape != shape)
    throw Error("optimizer state tensor " + name + " has shape " + shape_string(info->shape) + ", expected " +
                    shape_string(shape),
                where);
  return *info;
}

// Uploads tensor `info` of `file` into `moments` at element `offset` (the caller checked its shape).
void upload_tensor(const SafetensorsFile& file, const TensorInfo& info, backend::Buffer<float>& moments,
                   int64_t offset) {
  const std::span<const std::byte> bytes = file.data(info);
  moments.backend()->upload(moments.data() + offset, bytes.data(), bytes.size());
}

// Checks that `file` looks like any optimizer state: a step, and only F32 exp_avg./exp_avg_sq. pairs
// of equal shape. Returns the parameter names it holds moments for, with their shapes.
std::map<std::string, Shape, std::less<>> optimizer_state_params(const SafetensorsFile& file) {
  parse_step(file);
  const std::string where = file.path().string();
  std::map<std::string, Shape, std::less<>> params;
  for (const TensorInfo& t : file.tensors()) {
    if (t.dtype != DType::kF32) throw Error("optimizer state tensor " + t.name + " is not F32", where);
    if (t.name.starts_with(kExpAvgSq)) continue;  // checked from its exp_avg partner below
    if (!t.name.starts_with(kExpAvg)) throw Error("not an optimizer state: unexpected tensor " + t.name, where);
    params.emplace(t.name.substr(kExpAvg.size()), t.shape);
  }
  for (const TensorInfo& t : file.tensors()) {
    if (!t.name.starts_with(kExpAvgSq)) continue;
    auto it = params.find(std::string_view(t.name).substr(kExpAvgSq.size()));
    if (it == params.end() || it->second != t.shape)
      throw Error("not an optimizer state: " + t.name + " has no exp_avg of the same shape", where);
  }
  for (const auto& [name, shape] : params) expect_tensor(file, std::string(kExpAvgSq) + name, shape);
  return params;
}

// Canonical dense FFN names (gate_proj/up_proj/down_proj) of layers [0, layers), keyed by (layer, role).
std::map<std::pair<int64_t, WeightRole>, std::string> dense_ffn_names(int64_t layers) {
  ModelConfig dense = default_model_config(Family::kLlama);
  dense.num_hidden_layers = layers;
  dense.vocab_size = dense.hidden_size = dense.intermediate_size = 1;  // names only: shapes do not matter
  dense.num_attention_heads = dense.num_key_value_heads = dense.head_dim = 1;
  std::map<std::pair<int64_t, WeightRole>, std::string> names;
  for (const WeightSpec& spec : expected_weights(dense))
    if (spec.role == WeightRole::kGateProj || spec.role == WeightRole::kUpProj || spec.role == WeightRole::kDownProj)
      names[{spec.layer, spec.role}] = spec.name;
  return names;
}

// The dense FFN role an expert (routed or shared) weight is upcycled from; nullopt-free: kEmbed = none.
WeightRole dense_counterpart(WeightRole role) {
  switch (role) {
    case WeightRole::kExpertGate:
    case WeightRole::kSharedGate:
      return WeightRole::kGateProj;
    case WeightRole::kExpertUp:
    case WeightRole::kSharedUp:
      return WeightRole::kUpProj;
    case WeightRole::kExpertDown:
    case WeightRole::kSharedDown:
      return WeightRole::kDownProj;
    default:
      return WeightRole::kEmbed;
  }
}

}  // namespace

void save_optimizer_state(const AdamW& optimizer, const std::filesystem::path& file) {
  const std::vector<WeightSpec>& specs = optimizer.specs();
  std::vector<TensorDecl> decls;
  decls.reserve(2 * specs.size());
  for (std::string_view prefix : {kExpAvg, kExpAvgSq})
    for (const WeightSpec& spec : specs) decls.push_back({std::string(prefix) + spec.name, DType::kF32, spec.shape});
  const AdamWConfig& c = optimizer.config();
  CheckpointWriterOptions options;
  options.max_shard_bytes = std::numeric_limits<uint64_t>::max();  // always one file
  options.single_file_name = file.filename().string();
  options.metadata = {{"step", std::to_string(optimizer.steps())},
                      {"beta1", decimal(c.beta1)},
                      {"beta2", decimal(c.beta2)},
                      {"eps", decimal(c.eps)},
                      {"weight_decay", decimal(c.weight_decay)}};
  const std::filesystem::path dir = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  CheckpointWriter writer(dir, std::move(decls), std::move(options));
  const std::vector<int64_t>& begin = optimizer.offsets();
  std::vector<float> staging;
  auto write = [&](std::string_view prefix, const backend::Buffer<float>& moments, size_t i) {
    staging.resize(size_t(begin[i + 1] - begin[i]));
    moments.backend()->download(staging.data(), moments.data() + begin[i], staging.size() * sizeof(float));
    writer.write_f32(std::string(prefix) + specs[i].name, staging);
  };
  for (size_t i = 0; i < specs.size(); ++i) {
    write(kExpAvg, optimizer.exp_avg(), i);
    write(kExpAvgSq, optimizer.exp_avg_sq(), i);
  }
  writer.finish();
}

void load_optimizer_state(AdamW& optimizer, const std::filesystem::path& file) {
  const SafetensorsFile state = SafetensorsFile::open(file);
  const int64_t step = parse_step(state);
  const std::vector<WeightSpec>& specs = optimizer.specs();
  const std::vector<int64_t>& begin = optimizer.offsets();
  // Validate everything before touching the optimizer: a failed load leaves it as it was.
  std::vector<std::pair<const TensorInfo*, const TensorInfo*>> found;
  std::map<std::string, bool, std::less<>> expected;
  for (const WeightSpec& spec : specs) {
    const std::string m = std::string(kExpAvg) + spec.name, v = std::string(kExpAvgSq) + spec.name;
    const TensorInfo* m_info = &expect_tensor(state, m, spec.shape);  // m first: errors name it first
    found.emplace_back(m_info, &expect_tensor(state, v, spec.shape));
    expected[m] = expected[v] = true;
  }
  for (const TensorInfo& t : state.tensors())
    if (!expected.contains(t.name))
      throw Error("optimizer state has tensor " + t.name + ", which this model has no parameter for", file.string());
  for (size_t i = 0; i < specs.size(); ++i) {
    upload_tensor(state, *found[i].first, optimizer.exp_avg(), begin[i]);
    upload_tensor(state, *found[i].second, optimizer.exp_avg_sq(), begin[i]);
  }
  optimizer.set_steps(step);
}

MomentBroadcast broadcast_dense_moments(AdamW& optimizer, const std::filesystem::path& dense_optimizer_file) {
  const SafetensorsFile dense = SafetensorsFile::open(dense_optimizer_file);
  const auto dense_params = optimizer_state_params(dense);
  const std::vector<WeightSpec>& specs = optimizer.specs();
  const std::vector<int64_t>& begin = optimizer.offsets();
  int64_t layers = 0;
  for (const WeightSpec& spec : specs) layers = std::max(layers, spec.layer + 1);
  const auto ffn_names = dense_ffn_names(layers);

  MomentBroadcast result;
  for (size_t i = 0; i < specs.size(); ++i) {
    const WeightSpec& spec = specs[i];
    // Same name first (attention, norms, embeddings, dense layers kept dense), then the dense FFN.
    std::string source = spec.name;
    auto it = dense_params.find(source);
    const WeightRole ffn_role = dense_counterpart(spec.role);
    if (it == dense_params.end() && ffn_role != WeightRole::kEmbed) {
      source = ffn_names.at({spec.layer, ffn_role});
      it = dense_params.find(source);
    }
    if (it == dense_params.end() || it->second != spec.shape) {
      const size_t bytes = size_t(begin[i + 1] - begin[i]) * sizeof(float);
      for (backend::Buffer<float>* moments : {&optimizer.exp_avg(), &optimizer.exp_avg_sq()})
        moments->backend()->fill_zero(moments->data() + begin[i], bytes);
      result.fresh.push_back(spec.name);
      continue;
    }
    upload_tensor(dense, *dense.find(std::string(kExpAvg) + source), optimizer.exp_avg(), begin[i]);
    upload_tensor(dense, *dense.find(std::string(kExpAvgSq) + source), optimizer.exp_avg_sq(), begin[i]);
    ++result.copied;
  }
  return result;
}

}  // namespace upcycle::train
