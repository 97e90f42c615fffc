// Named model shapes for `upcycle init`, from tiny (unit tests, milliseconds) to 7B-shaped
// (benchmarks). A preset fixes shapes only; everything else comes from the family's HF defaults.
//   tiny   V=512    D=64   L=2  H=4  KV=2 F=192     (tests)
//   small  V=4096   D=256  L=4  H=8  KV=4 F=704
//   base   V=8192   D=512  L=8  H=8  KV=8 F=1408    (the engine benchmark model)
//   1b     V=128256 D=2048 L=16 H=32 KV=8 F=8192    (Llama-3.2-1B-shaped, tied embeddings)
//   7b     V=32000  D=4096 L=32 H=32 KV=8 F=14336   (Mistral-7B-shaped)
// MoE families get 4 (tiny) or 8 experts, top-2; Qwen MoE experts are F/2 wide, the Qwen2-MoE
// shared expert F wide; Mixtral experts are F wide (HF's intermediate_size is the expert width).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "io/model_config.h"

namespace upcycle {

const std::vector<std::string>& preset_names();
// Throws Error("unknown preset '<name>' (choose one of: …)").
ModelConfig preset_config(Family family, std::string_view preset);

}  // namespace upcycle
