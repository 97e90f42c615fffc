// The host halves a device backend's MoE ops rest on (the cuda backend's kernels use them; these tests
// need no GPU):
//   - moe_rules::jitter_stream_key(seed) is the key from which CounterRng(seed, "moe_jitter") draws:
//     mix64(key ^ mix64(i)) is its bits(i) and (bits >> 11)·2⁻⁵³ its uniform(i), the formulas the
//     device port of the jitter noise repeats;
//   - check_moe_route = check_moe_route_spec + check_moe_route_finite: the device reports the first
//     non-finite score / bias (index and value) it found with exactly the host check's message.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend/moe_route_rules.h"
#include "backend/op_checks.h"
#include "core/rng.h"

namespace upcycle::backend {
namespace {

TEST(MoeDevicePort, JitterStreamKeyReproducesCounterRngBitsAndUniforms) {
  for (uint64_t seed : {uint64_t{0}, uint64_t{77}, uint64_t{0x8000000000000005ull}}) {
    const uint64_t key = moe_rules::jitter_stream_key(seed);
    const CounterRng rng(seed, "moe_jitter");
    for (uint64_t i : {uint64_t{0}, uint64_t{1}, uint64_t{517}, uint64_t{1} << 40}) {
      const uint64_t bits = mix64(key ^ mix64(i));
      EXPECT_EQ(bits, rng.bits(i)) << seed << " " << i;
      EXPECT_EQ(double(bits >> 11) * 0x1.0p-53, rng.uniform(i)) << seed << " " << i;
    }
  }
  EXPECT_NE(moe_rules::jitter_stream_key(1), CounterRng(1, "other").key());  // the stream name matters
}

// The message of the error fn throws ("" when it does not throw): an internal check's logic_error
// (without the failing expression and source line) or the user-facing NonFiniteRouterScores.
template <typename Fn>
std::string failure_of(Fn fn) {
  try {
    fn();
  } catch (const std::logic_error& e) {
    const std::string what = e.what();
    return what.substr(0, what.find(" ["));
  } catch (const NonFiniteRouterScores& e) {
    return e.what();
  }
  return "";
}

TEST(MoeDevicePort, NonFiniteReportMatchesTheHostCheck) {
  Backend::MoeRouteSpec spec{.tokens = 2, .experts = 4, .top_k = 2, .capacity = 4};
  std::vector<float> p(8, 0.25f), bias(4, 0.0f);
  EXPECT_EQ(failure_of([&] { check_moe_route(p.data(), bias.data(), spec); }), "");
  EXPECT_EQ(failure_of([] { check_moe_route_finite(-1, 0.0f, -1, 0.0f, 4); }), "");
  p[5] = NAN;
  bias[2] = INFINITY;
  const std::string host = failure_of([&] { check_moe_route(p.data(), bias.data(), spec); });
  EXPECT_EQ(host, "router score nan of token 1, expert 1 is not finite");
  EXPECT_EQ(failure_of([] { check_moe_route_finite(5, NAN, 2, INFINITY, 4); }), host);
  p[5] = 0.25f;
  const std::string host_bias = failure_of([&] { check_moe_route(p.data(), bias.data(), spec); });
  EXPECT_EQ(host_bias, "selection bias inf of expert 2 is not finite");
  EXPECT_EQ(failure_of([] { check_moe_route_finite(-1, 0.0f, 2, INFINITY, 4); }), host_bias);
  spec.n_group = 3;  // 4 experts do not split into 3 groups: the spec half refuses before any score is read
  EXPECT_NE(failure_of([&] { check_moe_route_spec(spec); }), "");
}

}  // namespace
}  // namespace upcycle::backend
