// Checkpoint → transformer with loaded weights (see load_model.h).
#include "model/load_model.h"

#include "io/checkpoint.h"
#include "model/parameters.h"

namespace upcycle::model {

std::unique_ptr<Transformer> load_transformer(const ModelConfig& config, const std::filesystem::path& dir,
                                              backend::Backend& backend) {
  auto transformer = std::make_unique<Transformer>(config, backend, (dir / "config.json").string());
  Checkpoint ckpt = Checkpoint::open(dir);
  load_parameters(transformer->params(), ckpt, checked_weight_table(config, ckpt));
  return transformer;
}

}  // namespace upcycle::model
