// A checkpoint directory turned into a runnable model: the transformer for its config, on a backend,
// with the checkpoint's weights loaded (any of F32/F16/BF16, per-expert or fused experts). Callers
// read the config first (to validate user input such as token ids before any heavy work) and own
// the backend, which must outlive the transformer.
#pragma once

#include <filesystem>
#include <memory>

#include "backend/backend.h"
#include "io/model_config.h"
#include "model/transformer.h"

namespace upcycle::model {

// Throws Error naming the directory when the tensors do not match the config.
std::unique_ptr<Transformer> load_transformer(const ModelConfig& config, const std::filesystem::path& dir,
                                              backend::Backend& backend);

}  // namespace upcycle::model
