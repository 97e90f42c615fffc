// Expert matrices built straight from a dense FFN matrix held in its on-disk dtype, for experts that only
// select neurons (rows of gate/up [F,D], columns of down [D,F]) and scale them: shuffled and contiguous
// splits, weight scaling, copy experts written as slices, shared experts. No fp32 copy of either matrix
// exists; each output row goes source dtype → fp32 row → × scale → output dtype on its own, in parallel.
// The bytes equal the fp32 route (convert the dense matrix, gather, multiply by float(scale) unless it
// is 1, convert) bit for bit: every step is elementwise, and an unscaled same-dtype gather copies the
// elements with NaNs quietened exactly as that route's round trip through fp32 quietens them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "recipes/expert_init.h"
#include "recipes/source_models.h"

namespace upcycle::recipes {

// The expert matrix taking `neurons` of dense matrix `m` (gate/up: those rows, down: those columns),
// times `scale` (1: untouched), in `out` dtype: [neurons, D] for gate/up, [D, neurons] for down.
std::vector<std::byte> gather_neurons(const RawMatrix& dense, FfnMatrix m, const std::vector<int64_t>& neurons,
                                      double scale, DType out);

// The whole matrix in fp32 (for recipes that draw numbers), converted in parallel blocks.
std::vector<float> to_f32(const RawMatrix& dense);

// values in `out` dtype, converted in parallel blocks: the bytes CheckpointWriter::write_f32 writes.
std::vector<std::byte> encode_f32(const std::vector<float>& values, DType out);

}  // namespace upcycle::recipes
