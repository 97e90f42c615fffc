// The op-case table's row type and its runner (tests/unit/backend_op_table_test.cpp runs the rows;
// the rows are added by family in backend_op_table_test.cpp and op_cases_moe_routing.cpp). A row
// runs its op through the Backend interface only — seeded host inputs uploaded into backend buffers,
// every output downloaded at the end — so a device backend runs it unchanged. Header-only.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "backend/buffer.h"
#include "support/backend_test_support.h"

namespace upcycle::test {

// Which tolerance a row's floating-point outputs get against ref (integer outputs are always exact).
enum class OpClass {
  kFp32,          // 1e-5 relative: fp32 kernels vs ref's double accumulation
  kMatmul,        // linear / grouped linear: a backend may round their inputs (test::matmul_rtol)
  kRefArithmetic  // MoE routing and router losses: the contract fixes the arithmetic (ref_arithmetic_rtol)
};

inline constexpr double kOpRtol = 1e-5;

// Tolerance of the MoE routing and loss ops' floating-point outputs against ref: 0, bit for bit, on the
// host backends, whose kernels share the ref's rules and arithmetic (src/backend/moe_route_rules.*, the
// same double sums in the same order: docs/engine.md, "MoE routing ops"); a backend with other
// arithmetic (a device's exp and log) is held to the fp32 tolerance and adds its rule here. The
// decisions themselves — token and expert indices, counts, offsets, top-k picks — are integers,
// exact on every backend.
inline double ref_arithmetic_rtol(backend::BackendKind kind) {
  switch (kind) {
    case backend::BackendKind::kRef:
    case backend::BackendKind::kCpu:
    case backend::BackendKind::kCpuBF16:
      return 0.0;
    case backend::BackendKind::kCuda:  // CUDA's double exp/log may differ from glibc's in the last bit
      return kOpRtol;
  }
  return kOpRtol;
}

inline double op_rtol(backend::BackendKind kind, OpClass op) {
  switch (op) {
    case OpClass::kMatmul:
      return rounds_matmul_inputs(kind) ? kBf16MatmulRtol : kOpRtol;
    case OpClass::kRefArithmetic:
      return ref_arithmetic_rtol(kind);
    case OpClass::kFp32:
      break;
  }
  return kOpRtol;
}

// One named output of a run, downloaded and widened to double (exactly, for every type used here).
struct OpOutput {
  std::string name;
  bool integer = false;  // compared exactly
  std::vector<double> values;
};

// One run of a row on one backend: inputs uploaded, outputs named and downloaded at the end.
class OpRun {
 public:
  explicit OpRun(backend::Backend& be) : be_(be) {}
  backend::Backend& be() { return be_; }

  template <class T>
  T* in(const std::vector<T>& host) {
    return upload(host);
  }
  // An output (or gradient) buffer starting at `init`, downloaded into the results as `name`.
  template <class T>
  T* out(std::string name, const std::vector<T>& init) {
    T* p = upload(init);
    const backend::Buffer<T>* buffer = &storage<T>().back();
    fetch_.push_back([name = std::move(name), buffer] {
      const std::vector<T> host = buffer->to_host();
      return OpOutput{name, std::is_integral_v<T>, std::vector<double>(host.begin(), host.end())};
    });
    return p;
  }
  // A value an op returned to the host.
  void scalar(std::string name, double value) {
    fetch_.push_back([name = std::move(name), value] { return OpOutput{name, false, {value}}; });
  }
  // n elements of backend memory at p, on the host now (what a caller downloads between ops).
  template <class T>
  std::vector<T> fetch(const T* p, int64_t n) {
    std::vector<T> host(static_cast<size_t>(n));
    if (n > 0) be_.download(host.data(), p, size_t(n) * sizeof(T));
    return host;
  }

  std::vector<OpOutput> outputs() const {
    std::vector<OpOutput> all;
    for (const auto& f : fetch_) all.push_back(f());
    return all;
  }
  // The output called `name` (for finite-difference objectives).
  std::vector<double> output(const std::string& name) const {
    for (const auto& f : fetch_) {
      OpOutput o = f();
      if (o.name == name) return o.values;
    }
    ADD_FAILURE() << "no output " << name;
    return {};
  }

 private:
  template <class T>
  T* upload(const std::vector<T>& host) {
    auto& store = storage<T>();
    store.emplace_back(be_, host.size());
    store.back().upload(host);
    return store.back().data();
  }
  template <class T>
  std::deque<backend::Buffer<T>>& storage() {
    if constexpr (std::is_same_v<T, float>) return floats_;
    else if constexpr (std::is_same_v<T, double>) return doubles_;
    else if constexpr (std::is_same_v<T, int32_t>) return ints_;
    else return int64s_;
  }

  backend::Backend& be_;
  std::deque<backend::Buffer<float>> floats_;  // deques: pointers stay valid as they grow
  std::deque<backend::Buffer<double>> doubles_;
  std::deque<backend::Buffer<int32_t>> ints_;
  std::deque<backend::Buffer<int64_t>> int64s_;
  std::vector<std::function<OpOutput()>> fetch_;
};

struct OpCase {
  std::string name;  // op and shapes, a valid gtest name part
  OpClass op_class;
  std::function<void(OpRun&)> run;
  // For rows of an op with a backward: its gradients against central finite differences of its own
  // forward on the given backend (every registered backend, ref included). Empty: none in this row.
  std::function<void(backend::Backend&)> gradient_check = {};
};

// Element-wise |got − want| ≤ rtol·(|want_i| + max_j |want_j|), as test::all_close; rtol 0 = bitwise.
inline ::testing::AssertionResult op_outputs_close(const std::vector<double>& got, const std::vector<double>& want,
                                                   double rtol) {
  if (got.size() != want.size()) return ::testing::AssertionFailure() << "size " << got.size() << " vs " << want.size();
  double scale = 0.0;
  for (double w : want) scale = std::max(scale, std::fabs(w));
  for (size_t i = 0; i < got.size(); ++i) {
    const bool ok = rtol == 0.0 ? got[i] == want[i] || (std::isnan(got[i]) && std::isnan(want[i]))
                                : std::fabs(got[i] - want[i]) <= rtol * (std::fabs(want[i]) + scale);
    if (!ok)
      return ::testing::AssertionFailure() << "element " << i << ": got " << got[i] << ", want " << want[i]
                                           << " (rtol " << rtol << ", max |want| " << scale << ")";
  }
  return ::testing::AssertionSuccess();
}

// Row pointers of G weight blocks of `per` elements in one buffer (grouped_linear's w[g], dw[g]).
template <class T>
std::vector<T*> blocks(T* base, int64_t G, int64_t per) {
  std::vector<T*> p;
  for (int64_t g = 0; g < G; ++g) p.push_back(base + g * per);
  return p;
}

// "_M7_K33" from {{"M", 7}, {"K", 33}}: shapes in a row's name.
inline std::string dims(std::initializer_list<std::pair<const char*, int64_t>> named) {
  std::string s;
  for (const auto& [key, value] : named) s += std::string("_") + key + std::to_string(value);
  return s;
}

// The rows of the MoE routing and router-loss ops (op_cases_moe_routing.cpp).
void add_moe_routing_cases(std::vector<OpCase>& cases);

}  // namespace upcycle::test
