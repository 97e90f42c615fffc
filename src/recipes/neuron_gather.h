// Expert matrices built straight from a dense FFN matrix held in its on-disk dtype, for experts that only
// select neurons (rows of gate/up [F,D], columns of down [D,F]) and scale them: shuffled and contiguous
// splits, weight scaling, copy experts written as slices, shared experts. No fp32 copy of either matrix
// exists; each output row goes source dtype → fp32 row → × scale → output dtype on its own. One thread on
// purpose: the converter's bottleneck is the background pwrite (the kernel's copy into the page cache,
// 52 % of a shuffled split's CPU time under perf, the gather 10 %), and OpenMP workers spinning between
// regions took 16 % more, stealing the writer's core on a 2-core machine.
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
// `reuse`: a spent buffer (WriteBehind::spare()) whose pages are reused, neither zeroed nor faulted again.
std::vector<std::byte> gather_neurons(const RawMatrix& dense, FfnMatrix m, const std::vector<int64_t>& neurons,
                                      double scale, DType out, std::vector<std::byte> reuse = {});

// Whether an unscaled element of `stored` dtype is written to `out` as it is (gather_neurons' verbatim copy).
bool copies_verbatim(DType stored, DType out, double scale);
// What stored → fp32 → stored does to n elements in place: NaNs of bf16/f16 gain the quiet bit.
void quiet_nans(std::byte* data, size_t n, DType dtype);
// to[j] = row[neurons[j]] for elements of `size` bytes (2, 4 or 8).
void gather_elements(const std::byte* row, const std::vector<int64_t>& neurons, std::byte* to, size_t size);

// The whole matrix in fp32, converted in parallel blocks (the fp32 route bench_expert_init_profile compares with).
std::vector<float> to_f32(const RawMatrix& dense);

// values in `out` dtype, converted in parallel blocks: the bytes CheckpointWriter::write_f32 writes.
std::vector<std::byte> encode_f32(const std::vector<float>& values, DType out, std::vector<std::byte> reuse = {});

}  // namespace upcycle::recipes
