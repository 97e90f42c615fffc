// TensorStore → HF checkpoint directory (see save_model.h). The same pattern as io/random_init.cpp:
// declare disk_tensors() for the layout, then write every canonical weight at the place the
// WeightTable built from those very tensors says it lives (fused experts are contiguous slices), so
// writing and loading can never disagree about the layout.
#include "model/save_model.h"

#include "core/error.h"
#include "io/checkpoint_writer.h"

namespace upcycle::model {

std::vector<std::string> save_model(const ModelConfig& config, const TensorStore& params,
                                    const std::filesystem::path& dir, const SaveModelOptions& options) {
  UPCYCLE_CHECK(options.dtype == DType::kF32 || options.dtype == DType::kBF16 || options.dtype == DType::kF16,
                "save_model writes F32, BF16 or F16");
  const std::vector<WeightSpec> expected = expected_weights(config);
  UPCYCLE_CHECK(params.specs().size() == expected.size(), "parameter store was not built for this config");
  for (size_t i = 0; i < expected.size(); ++i)
    UPCYCLE_CHECK(params.specs()[i].name == expected[i].name && params.specs()[i].shape == expected[i].shape,
                  "parameter store was not built for this config: " + expected[i].name);
  const ExpertLayout layout = config.is_moe() ? options.layout : ExpertLayout::kNone;
  UPCYCLE_CHECK(layout != ExpertLayout::kNone || !config.is_moe(), "a MoE model needs an expert layout");

  ModelConfig file_config = config;
  file_config.dtype = options.dtype;  // config.json states what the files hold
  write_model_config(dir, file_config);

  std::vector<TensorDecl> decls;
  std::map<std::string, Shape, std::less<>> disk_shapes;
  for (auto& t : disk_tensors(config, layout)) {
    disk_shapes[t.name] = t.shape;
    decls.push_back({t.name, options.dtype, t.shape});
  }
  const WeightTable table = WeightTable::build(config, disk_shapes);
  UPCYCLE_CHECK(table.ok(), "disk_tensors and WeightTable disagree: " + (table.problems().empty() ? "" : table.problems()[0]));

  CheckpointWriter writer(dir, std::move(decls), {options.max_shard_bytes, options.metadata});
  for (size_t i = 0; i < params.specs().size(); ++i) {
    const WeightLocation* where = table.locate(params.specs()[i].name);
    UPCYCLE_CHECK(where != nullptr, "no location for " + params.specs()[i].name);
    // F32: the bits as they are; host_view reads each weight back (aliases on host backends).
    writer.write_f32(where->tensor, params.host_view(i).span(), where->element_offset);
  }
  write_placeholder_tensors(writer, config);
  std::vector<std::string> files{"config.json"};
  for (auto& f : writer.finish()) files.push_back(std::move(f));
  return files;
}

}  // namespace upcycle::model
