// Helpers for backend op tests: the list of backends every parameterised test runs on, seeded random
// tensors, a norm-aware closeness check, and the usual inv_freq table. Header-only.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/rng.h"

namespace upcycle::test {

// The backends every parameterised test runs on: tests instantiate over this (never a hand-written
// list), so a new backend is checked everywhere by being registered. Chosen at link time, one
// definition per test executable (the tests' objects are shared, not compiled twice):
//   unit_tests (label fast): every registered host backend (support/backend_kinds_host.cpp) — the
//     same list with or without a GPU, so the fast tier never depends on the machine;
//   gpu_tests (label gpu): {cuda} alone (gpu/backend_kinds_cuda.cpp); its tests fail, never skip,
//     when no GPU is visible.
std::vector<backend::BackendKind> backend_kinds();

// The registry rows of backend_kinds(), for loops that name the backend in their messages.
inline std::vector<backend::BackendInfo> backend_infos() {
  std::vector<backend::BackendInfo> infos;
  for (backend::BackendKind kind : backend_kinds())
    for (const backend::BackendInfo& info : backend::registered_backends())
      if (info.kind == kind) infos.push_back(info);
  return infos;
}

// Every registered backend but ref, the oracle the others are compared with.
inline std::vector<backend::BackendKind> non_ref_backend_kinds() {
  std::vector<backend::BackendKind> kinds;
  for (backend::BackendKind kind : backend_kinds())
    if (kind != backend::BackendKind::kRef) kinds.push_back(kind);
  return kinds;
}

// Backends that round matmul inputs (cpu-bf16 and cuda: linear and grouped linear from bf16 inputs).
inline bool rounds_matmul_inputs(backend::BackendKind kind) {
  return kind == backend::BackendKind::kCpuBF16 || kind == backend::BackendKind::kCuda;
}

// Every registered backend whose ops are all full fp32: for tests whose tolerances are fp32's
// (finite differences through whole layers and models, comparisons with double references).
// cpu-bf16's whole-model closeness to fp32 is pinned in backend_bf16_test.cpp instead.
inline std::vector<backend::BackendKind> fp32_backend_kinds() {
  std::vector<backend::BackendKind> kinds;
  for (backend::BackendKind kind : backend_kinds())
    if (!rounds_matmul_inputs(kind)) kinds.push_back(kind);
  return kinds;
}

// The registry name as a gtest name part ("cpu-bf16" → "cpu_bf16").
inline std::string backend_test_name(backend::BackendKind kind) {
  for (const backend::BackendInfo& info : backend::registered_backends()) {
    if (info.kind != kind) continue;
    std::string name(info.name);
    for (char& c : name)
      if (c == '-') c = '_';
    return name;
  }
  return "unregistered";
}

// Tolerance of a backend's matmul ops (linear, grouped linear; not the _f32 variants) against ref or a
// double oracle, given the fp32 tolerance: cpu-bf16 rounds their inputs to bf16 (relative error 2⁻⁹
// per input, so products carry ~1e-3 and a 1e-2 bound leaves margin; cuda rounds the same way); every other backend and op keeps
// the fp32 tolerance. backend_bf16_test.cpp pins the bf16 semantics exactly.
inline constexpr double kBf16MatmulRtol = 1e-2;
inline double matmul_rtol(std::string_view backend_name, double fp32_rtol) {
  return rounds_matmul_inputs(backend::backend_kind_from_name(backend_name)) ? kBf16MatmulRtol : fp32_rtol;
}

// Name generator for INSTANTIATE_TEST_SUITE_P(..., ValuesIn(backend_kinds()), BackendTestName()).
struct BackendTestName {
  std::string operator()(const ::testing::TestParamInfo<backend::BackendKind>& info) const {
    return backend_test_name(info.param);
  }
};

// n standard-normal draws times `scale`, reproducible from (seed, stream).
inline std::vector<float> random_floats(size_t n, uint64_t seed, float scale = 1.0f,
                                        std::string_view stream = "backend-test") {
  std::vector<float> out(n);
  CounterRng(seed, stream).fill_normal(out.data(), 0, n, 0.0f, scale);
  return out;
}

inline double max_abs(const std::vector<float>& v) {
  double m = 0.0;
  for (float e : v) m = std::max(m, double(std::fabs(e)));
  return m;
}

// Element-wise |got − want| ≤ rtol·(|want_i| + max_j |want_j|). The max term is there because fp32
// sums of mixed-sign terms cancel: an output near zero carries absolute error of order
// eps·(size of its terms), not eps·|output|, so a purely element-wise relative bound would be noise.
inline ::testing::AssertionResult all_close(const std::vector<float>& got, const std::vector<float>& want,
                                            double rtol) {
  if (got.size() != want.size()) return ::testing::AssertionFailure() << "size " << got.size() << " vs " << want.size();
  const double scale = max_abs(want);
  for (size_t i = 0; i < got.size(); ++i) {
    const double tol = rtol * (std::fabs(double(want[i])) + scale);
    if (!(std::fabs(double(got[i]) - double(want[i])) <= tol)) {
      return ::testing::AssertionFailure() << "element " << i << ": got " << got[i] << ", want " << want[i]
                                           << " (tol " << tol << ", max |want| " << scale << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

// HF default rotary frequencies: inv_freq[i] = base^(−2i/S).
inline std::vector<float> rope_inv_freq(int64_t S, double base = 10000.0) {
  std::vector<float> f(size_t(S / 2));
  for (int64_t i = 0; i < S / 2; ++i) f[size_t(i)] = float(std::pow(base, -2.0 * double(i) / double(S)));
  return f;
}

}  // namespace upcycle::test
