// NumPy .npy (format version 1.0) output for float32 C-order arrays, as numpy/lib/format.py writes
// them: magic "\x93NUMPY", version bytes 1 0, a little-endian u16 header length, then the header
// dict `{'descr': '<f4', 'fortran_order': False, 'shape': (d0, d1), }` padded with spaces and ended
// by '\n' so the data starts at a multiple of 64 bytes, then the raw little-endian floats.
// The file appears atomically (temp file in the same directory, fsync, rename, fsync of the
// directory): on any error nothing is left under the destination name or as a temp file.
// Non-goals: reading, other dtypes, Fortran order, format versions 2/3 (headers over 64 KiB).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace upcycle {

// The header bytes (magic through the padded dict and '\n') for a float32 array of `shape`.
std::string npy_header_f32(const std::vector<int64_t>& shape);

// Writes `data` (numel(shape) floats, row-major) to `path` atomically; throws Error naming path.
void write_npy_f32(const std::filesystem::path& path, const float* data, const std::vector<int64_t>& shape);

}  // namespace upcycle
