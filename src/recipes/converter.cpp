// The streaming converter (see converter.h). Shape legend: D model width, F dense FFN width,
// Fp expert width F/G, Fs shared-expert width, E experts.
#include "recipes/converter.h"

#include <algorithm>
#include <map>
#include <memory>
#include <set>

#include "core/error.h"
#include "core/progress.h"
#include "core/rng.h"
#include "io/checkpoint_writer.h"
#include "io/parallel_write.h"
#include "io/random_init.h"
#include "io/write_behind.h"
#include "recipes/dense_prefetch.h"
#include "recipes/drawn_expert.h"
#include "recipes/expert_init.h"
#include "recipes/expert_split.h"
#include "recipes/neuron_gather.h"
#include "recipes/router_init.h"

namespace upcycle::recipes {
namespace {

constexpr uint64_t kChunk = uint64_t{1} << 22;  // elements per averaging chunk

struct Ctx {
  const ConvertSpec& spec;
  const std::vector<SourceModel>& sources;
  const ConvertPlan& plan;
  const WeightTable& table;  // where each canonical output weight lives in the output layout
  CheckpointWriter& writer;
  WriteBehind& behind;  // computed expert matrices: written while the next one is computed
  DensePrefetch& prefetch;  // dense FFN matrices: the next one read while experts come from this one
  Progress* progress;  // nullptr: quiet
};

std::string layer_prefix(int64_t layer) { return "model.layers." + std::to_string(layer) + "."; }

// The source weight name for an output weight (same HF names; depth tiling maps the layer).
std::string source_name(const Ctx& c, const WeightSpec& out) {
  if (out.layer < 0 || !c.plan.depth_tiling) return out.name;
  const int64_t from = source_layer(c.plan, c.spec, out.layer, c.sources[0].config.num_hidden_layers);
  return layer_prefix(from) + out.name.substr(layer_prefix(out.layer).size());
}

void advance(Ctx& c, const WeightSpec& w) {
  if (c.progress) c.progress->advance(shape_numel(w.shape) * dtype_size(c.plan.config.dtype));
}

const WeightLocation& output_location(const Ctx& c, const WeightSpec& w) {
  const WeightLocation* where = c.table.locate(w.name);
  UPCYCLE_CHECK(where != nullptr, "no output location for " + w.name);
  return *where;
}

void write_values(Ctx& c, const WeightSpec& w, const std::vector<float>& values) {
  const WeightLocation& at = output_location(c, w);
  c.writer.write_f32(at.tensor, values, at.element_offset);
  advance(c, w);
}

// A whole output tensor is copied kernel-side; a slice of a fused one goes through fp32 (exact for
// every float dtype upcycle writes).
void copy_weight(Ctx& c, const WeightSpec& w, const std::string& from, size_t source = 0) {
  const WeightLocation& at = output_location(c, w);
  if (at.tensor != w.name || at.element_offset != 0) {
    c.writer.write_f32(at.tensor, read_f32(c.sources[source], from), at.element_offset);
    advance(c, w);
    return;
  }
  auto [file, info] = c.sources[source].tensor(from);
  c.writer.copy_from(w.name, *file, *info);
  advance(c, w);
}

void average_weight(Ctx& c, const WeightSpec& w, const std::string& from) {
  const uint64_t n = shape_numel(w.shape);
  std::vector<float> sum(size_t(std::min(n, kChunk))), part(sum.size());
  for (uint64_t first = 0; first < n; first += kChunk) {
    const uint64_t count = std::min(kChunk, n - first);
    std::fill(sum.begin(), sum.begin() + long(count), 0.0f);
    for (const auto& s : c.sources) {
      read_f32(s, from, first, count, part.data());
      for (uint64_t i = 0; i < count; ++i) sum[i] += part[i];
    }
    const float inv = 1.0f / float(c.sources.size());
    for (uint64_t i = 0; i < count; ++i) sum[i] *= inv;
    const WeightLocation& at = output_location(c, w);
    c.writer.write_f32(at.tensor, {sum.data(), size_t(count)}, at.element_offset + first);
  }
  advance(c, w);
}

// Embeddings, norms, attention, dense FFNs: copied from the base, averaged, or zeros when the
// source has no such tensor (q/k/v biases synthesised for qwen2_moe).
void write_carried(Ctx& c, const WeightSpec& w) {
  const std::string from = source_name(c, w);
  if (!c.sources[0].table.locate(from)) {
    write_values(c, w, std::vector<float>(size_t(shape_numel(w.shape)), 0.0f));
    return;
  }
  const bool ffn = w.role == WeightRole::kGateProj || w.role == WeightRole::kUpProj || w.role == WeightRole::kDownProj;
  if (c.spec.non_ffn == NonFfn::kAverage && c.sources.size() > 1 && !ffn)
    average_weight(c, w, from);
  else
    copy_weight(c, w, from);
}

std::string dense_ffn_name(int64_t layer, FfnMatrix m) {
  return layer_prefix(layer) + "mlp." + std::string(ffn_matrix_name(m)) + "_proj.weight";
}

double matrix_scale(const MatrixScales& s, FfnMatrix m) {
  return m == FfnMatrix::kGate ? s.gate : m == FfnMatrix::kUp ? s.up : s.down;
}

size_t moe_index(const Ctx& c, int64_t layer) {
  const auto it = std::find(c.plan.moe_layers.begin(), c.plan.moe_layers.end(), layer);
  UPCYCLE_CHECK(it != c.plan.moe_layers.end(), "layer is not an MoE layer");
  return size_t(it - c.plan.moe_layers.begin());
}

// The dense neurons routed expert e of `layer` takes (coactivation: the given groups).
std::vector<int64_t> routed_neurons(const Ctx& c, int64_t layer, int64_t e) {
  const ConvertSpec& s = c.spec;
  if (s.split == ExpertSplit::kCoactivation) return s.neuron_groups.at(moe_index(c, layer)).experts.at(size_t(e));
  // A contiguous partition (E + S = G, no virtual groups): the shared expert holds shards 0..S−1.
  const int64_t shard = s.split == ExpertSplit::kContiguous && !c.plan.virtual_groups ? s.shared_experts + e : e;
  return expert_neurons(s.split, c.sources[0].config.intermediate_size, s.granularity, shard, s.seed, layer);
}

// How routed experts are made from their dense matrices, independent of the layer.
ExpertInitParams expert_init_params(const Ctx& c) {
  const ConvertSpec& s = c.spec;
  ExpertInitParams ip{s.expert_init, s.drop_ratio, s.drop_scope, s.drop_stats, s.noise_std,
                      c.plan.config.initializer_range, s.seed, s.rng_version};
  if (s.expert_init == ExpertInit::kCopy || (s.expert_init != ExpertInit::kRandom && !reinit_any(s)))
    ip.init = ExpertInit::kCopy;  // nothing re-drawn: the expert is its dense neurons
  return ip;
}

double expert_scale(const Ctx& c, FfnMatrix m, int64_t e) {
  double v = matrix_scale(c.plan.scales, m);
  if (m == FfnMatrix::kDown && !c.spec.expert_residual_scale.empty()) v *= c.spec.expert_residual_scale[size_t(e)];
  return v;
}

double expert_noise(const Ctx& c, int64_t e) {
  return c.spec.expert_noise_std.empty() ? 0.0 : c.spec.expert_noise_std[size_t(e)];
}

// How one expert matrix is produced: a kernel-side copy of the dense tensor, a gather (and scale) in
// the stored dtype, or drawn values (drop, noise, random, mergekit noise) computed row by row.
enum class ExpertPath { kCopyTensor, kGatherBytes, kDrawn };

ExpertPath expert_path(const Ctx& c, FfnMatrix m, int64_t e) {
  const ConvertSpec& s = c.spec;
  if (expert_init_params(c).init != ExpertInit::kCopy || expert_noise(c, e) != 0.0) return ExpertPath::kDrawn;
  const bool whole = s.granularity == 1 && s.split == ExpertSplit::kContiguous && expert_scale(c, m, e) == 1.0;
  return whole ? ExpertPath::kCopyTensor : ExpertPath::kGatherBytes;
}

std::vector<int64_t> experts_of_source(const Ctx& c, int64_t src) {
  std::vector<int64_t> experts;
  for (int64_t e = 0; e < c.spec.experts; ++e)
    if (c.plan.expert_source[size_t(e)] == src) experts.push_back(e);
  return experts;
}

std::set<int64_t> used_sources(const Ctx& c) { return {c.plan.expert_source.begin(), c.plan.expert_source.end()}; }

// Whether matrix m of source src is read to build experts (random experts and tensor copies read none).
bool needs_dense(const Ctx& c, FfnMatrix m, int64_t src) {
  if (c.spec.expert_init == ExpertInit::kRandom) return false;
  const auto experts = experts_of_source(c, src);
  return std::any_of(experts.begin(), experts.end(),
                     [&](int64_t e) { return expert_path(c, m, e) != ExpertPath::kCopyTensor; });
}

constexpr FfnMatrix kFfnMatrices[] = {FfnMatrix::kGate, FfnMatrix::kUp, FfnMatrix::kDown};

// The dense matrices write_all reads for experts, in the order it reads them (see write_expert_matrix).
std::vector<DensePrefetch::Key> dense_read_order(const Ctx& c, const std::vector<WeightSpec>& specs) {
  std::vector<DensePrefetch::Key> order;
  for (const auto& w : specs)
    if (w.role == WeightRole::kRouter)
      for (FfnMatrix m : kFfnMatrices)
        for (int64_t src : used_sources(c))
          if (needs_dense(c, m, src)) order.push_back({size_t(src), dense_ffn_name(w.layer, m)});
  return order;
}

// Hands a finished expert matrix (bytes in the output dtype) to the background writer.
void write_expert_bytes(Ctx& c, const WeightSpec& w, std::vector<std::byte> bytes) {
  const WeightLocation& at = output_location(c, w);
  c.behind.write(at.tensor, std::move(bytes), at.element_offset * dtype_size(c.plan.config.dtype));
  advance(c, w);
}

// A drawn expert matrix, computed and written in blocks of rows by every thread (io/parallel_write.h).
void write_drawn_expert(Ctx& c, const WeightSpec& w, const DrawnExpert& expert) {
  const WeightLocation& at = output_location(c, w);
  write_rows_in_parallel(c.writer, at.tensor, at.element_offset * dtype_size(c.plan.config.dtype), expert.rows(),
                         expert.row_bytes(), [&](int64_t first, int64_t count, std::byte* out) { expert.fill(first, count, out); });
  advance(c, w);
}

// One matrix kind of every routed expert of a layer, grouped by source so each dense matrix is
// read once. `outs[e]` is expert e's output weight.
void write_expert_matrix(Ctx& c, int64_t layer, FfnMatrix m, const std::vector<const WeightSpec*>& outs) {
  const ConvertSpec& s = c.spec;
  const ExpertInitParams ip = expert_init_params(c);
  const std::string dense_name = dense_ffn_name(layer, m);
  for (int64_t src : used_sources(c)) {
    const std::vector<int64_t> experts = experts_of_source(c, src);
    const bool drawn = std::any_of(experts.begin(), experts.end(),
                                   [&](int64_t e) { return expert_path(c, m, e) == ExpertPath::kDrawn; });
    RawMatrix raw;  // as stored: gathers and drawn experts read it, neither converts it whole
    MatrixStats stats;
    if (needs_dense(c, m, src)) {
      raw = c.prefetch.take({size_t(src), dense_name});
      // Only drop with matrix statistics reads them; once per dense matrix, not per expert.
      if (drawn && ip.init == ExpertInit::kDrop && ip.stats == DropStats::kMatrix) stats = matrix_stats(raw);
    }
    for (int64_t e : experts) {
      const WeightSpec& w = *outs[size_t(e)];
      switch (expert_path(c, m, e)) {
        case ExpertPath::kCopyTensor: copy_weight(c, w, dense_name, size_t(src)); continue;
        case ExpertPath::kGatherBytes:
          write_expert_bytes(c, w, gather_neurons(raw, m, routed_neurons(c, layer, e), expert_scale(c, m, e),
                                                  c.plan.config.dtype, c.behind.spare()));
          continue;
        case ExpertPath::kDrawn: break;
      }
      DrawnExpertSpec d;
      if (ip.init != ExpertInit::kRandom) d.dense = &raw, d.neurons = routed_neurons(c, layer, e);
      d.m = m, d.width = c.plan.expert_width, d.D = c.sources[0].config.hidden_size;
      d.init = ip, d.stats = stats, d.tensor_name = w.name;
      d.prefix = "layer" + std::to_string(layer) + ".expert" + std::to_string(e);
      // Noise first, then the scales: mergekit's noise_and_scale makes down_proj (W + noise)·residual_scale,
      // so residual_scale shrinks the expert's whole contribution, noise included.
      if (expert_noise(c, e) > 0) {
        d.noise.emplace(s.seed, d.prefix + "." + std::string(ffn_matrix_name(m)) + ".expert_noise", s.rng_version);
        d.noise_std = float(expert_noise(c, e));
      }
      d.scale = expert_scale(c, m, e), d.out = c.plan.config.dtype;
      write_drawn_expert(c, w, DrawnExpert(std::move(d)));
    }
  }
}

void write_shared(Ctx& c, int64_t layer, const WeightSpec& w, FfnMatrix m) {
  const ConvertSpec& s = c.spec;
  const SourceModel& src = c.sources[size_t(s.shared_source)];
  const int64_t F = src.config.intermediate_size;
  const auto neurons = s.split == ExpertSplit::kCoactivation ? s.neuron_groups.at(moe_index(c, layer)).shared
                                                             : shared_neurons(F, s.granularity, s.shared_experts);
  // Ungated: the HF gate is fixed at sigmoid(0) = 1/2, so down_proj × 2 makes the output exact.
  // dots1's shared expert has no gate at all: nothing to compensate.
  const bool halved = s.shared_gate == SharedGate::kUngated && c.plan.config.family == Family::kQwen2Moe;
  const double scale = m == FfnMatrix::kDown ? s.shared_residual_scale * (halved ? 2 : 1) : 1.0;
  write_expert_bytes(c, w, gather_neurons(read_raw(src, dense_ffn_name(layer, m)), m, neurons, scale, c.plan.config.dtype,
                                          c.behind.spare()));
}

void write_shared_gate(Ctx& c, int64_t layer, const WeightSpec& w) {
  std::vector<float> values(size_t(shape_numel(w.shape)), 0.0f);
  if (c.spec.shared_gate == SharedGate::kSigmoid)
    CounterRng(c.spec.seed, "layer" + std::to_string(layer) + ".shared_expert_gate")
        .fill_normal(values.data(), 0, values.size(), 0.0f, float(c.spec.router_std));
  if (c.spec.shared_gate == SharedGate::kGiven) {
    const std::vector<float>& row = c.spec.shared_gate_rows.at(moe_index(c, layer));
    UPCYCLE_CHECK(row.size() == values.size(), "shared gate row size");
    values = row;
  }
  write_values(c, w, values);
}

void write_router(Ctx& c, int64_t layer, const WeightSpec& w) {
  const int64_t E = c.spec.experts, D = c.plan.config.hidden_size;
  std::vector<float> values(size_t(E * D));
  const std::vector<float>* given = c.spec.router_init == RouterInit::kGiven ? &c.spec.router_rows[moe_index(c, layer)] : nullptr;
  init_router(values.data(), E, D, c.plan.virtual_groups ? c.spec.granularity : 1, c.spec.router_init,
              c.spec.router_std, c.spec.seed, layer, given);
  write_values(c, w, values);
}

void check_zero_only(const ConvertPlan& plan, const SourceModel& src) {
  for (const auto& name : plan.zero_only) {
    auto values = read_f32(src, name);
    if (std::any_of(values.begin(), values.end(), [](float v) { return v != 0.0f; }))
      throw Error(std::string(family_model_type(plan.config.family)) + " has no place for the non-zero tensor " + name +
                      " (attention bias); use --format " +
                      (name.find("o_proj") != std::string::npos ? "qwen3_moe or keep a llama-style family" : "qwen2_moe"),
                  src.dir.string());
  }
}

void write_all(Ctx& c, const std::vector<WeightSpec>& specs) {
  std::map<int64_t, std::map<WeightRole, std::vector<const WeightSpec*>>> experts;  // layer → role → [E]
  for (const auto& w : specs)
    if (w.expert >= 0) {
      auto& v = experts[w.layer][w.role];
      v.resize(size_t(c.spec.experts));
      v[size_t(w.expert)] = &w;
    }
  for (const auto& w : specs) {
    switch (w.role) {
      case WeightRole::kExpertGate: case WeightRole::kExpertUp: case WeightRole::kExpertDown: break;
      case WeightRole::kRouter:
        write_router(c, w.layer, w);
        write_expert_matrix(c, w.layer, FfnMatrix::kGate, experts[w.layer][WeightRole::kExpertGate]);
        write_expert_matrix(c, w.layer, FfnMatrix::kUp, experts[w.layer][WeightRole::kExpertUp]);
        write_expert_matrix(c, w.layer, FfnMatrix::kDown, experts[w.layer][WeightRole::kExpertDown]);
        break;
      case WeightRole::kSharedGate: write_shared(c, w.layer, w, FfnMatrix::kGate); break;
      case WeightRole::kSharedUp: write_shared(c, w.layer, w, FfnMatrix::kUp); break;
      case WeightRole::kSharedDown: write_shared(c, w.layer, w, FfnMatrix::kDown); break;
      case WeightRole::kSharedExpertGate: write_shared_gate(c, w.layer, w); break;
      case WeightRole::kRouterBias:  // dots1's e_score_correction_bias: no balance learned yet
        write_values(c, w, std::vector<float>(size_t(shape_numel(w.shape)), 0.0f));
        break;
      default: write_carried(c, w);
    }
  }
}

}  // namespace

ConvertResult convert(const ConvertSpec& spec, const ConvertOutput& output) {
  auto sources = open_sources(spec.sources);
  ConvertResult result;
  result.plan = make_plan(spec, sources);
  const ConvertPlan& plan = result.plan;
  check_zero_only(plan, sources[0]);
  if (output.layout == ExpertLayout::kFused && !plan.config.is_moe())
    throw Error("the fused expert layout needs an MoE output; a depth-tiled model is dense");
  const ExpertLayout layout = plan.config.is_moe() ? output.layout : ExpertLayout::kNone;
  std::map<std::string, std::string> metadata{{"upcycle_recipe", plan.recipe.dump()}};

  StagedDir out(output.dir, output.overwrite);
  out.write([&](const std::filesystem::path& dir) {
    copy_side_files(sources[0].dir, dir);
    write_model_config(dir, plan.config);
    if (spec.from_scratch == FromScratch::kYes) {
      RandomInitOptions init{spec.seed, layout, output.max_shard_bytes, metadata, output.progress == ShowProgress::kYes};
      result.files = write_random_weights(plan.config, init, dir);
      return;
    }
    std::vector<TensorDecl> decls;
    std::map<std::string, Shape, std::less<>> disk_shapes;
    for (auto& t : disk_tensors(plan.config, layout)) {
      disk_shapes[t.name] = t.shape;
      decls.push_back({t.name, plan.config.dtype, t.shape});
    }
    const WeightTable table = WeightTable::build(plan.config, disk_shapes);
    UPCYCLE_CHECK(table.ok(), "disk_tensors and WeightTable disagree: " + (table.problems().empty() ? "" : table.problems()[0]));
    CheckpointWriter writer(dir, std::move(decls), {output.max_shard_bytes, metadata});
    Progress progress("convert", writer.total_bytes(), "bytes");
    const bool show = output.progress == ShowProgress::kYes;
    WriteBehind behind(writer);
    DensePrefetch prefetch(sources);
    Ctx ctx{spec, sources, plan, table, writer, behind, prefetch, show ? &progress : nullptr};
    prefetch.expect(dense_read_order(ctx, table.weights()));
    write_all(ctx, table.weights());
    behind.drain();
    write_placeholder_tensors(writer, plan.config);
    result.files = writer.finish();
    if (show) progress.finish();
  });
  out.commit();
  for (const auto& w : expected_weights(plan.config)) result.tensor_bytes += shape_numel(w.shape) * dtype_size(plan.config.dtype);
  return result;
}

}  // namespace upcycle::recipes
