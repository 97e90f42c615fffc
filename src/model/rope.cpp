// RoPE frequency tables (see rope.h).
#include "model/rope.h"

#include <cmath>
#include <numbers>

#include "core/error.h"

namespace upcycle::model {
namespace {

std::vector<double> default_inv_freq(double theta, int64_t S) {
  std::vector<double> f(size_t(S / 2));
  for (int64_t i = 0; i < S / 2; ++i) f[size_t(i)] = 1.0 / std::pow(theta, double(2 * i) / double(S));
  return f;
}

void llama3_scale(std::vector<double>& f, const RopeConfig& rope, const std::string& file) {
  const double factor = rope.factor, low = rope.low_freq_factor, high = rope.high_freq_factor;
  const double old_len = double(rope.original_max_position_embeddings);
  if (!(factor > 0) || !(low > 0) || !(high > low) || !(old_len > 0))
    throw Error("llama3 rope_scaling needs factor > 0, 0 < low_freq_factor < high_freq_factor and "
                "original_max_position_embeddings > 0 (got factor " + std::to_string(factor) + ", low_freq_factor " +
                    std::to_string(low) + ", high_freq_factor " + std::to_string(high) +
                    ", original_max_position_embeddings " + std::to_string(rope.original_max_position_embeddings) + ")",
                file);
  const double low_freq_wavelen = old_len / low;
  const double high_freq_wavelen = old_len / high;
  for (double& inv : f) {
    const double wavelen = 2.0 * std::numbers::pi / inv;
    if (wavelen > low_freq_wavelen) {
      inv = inv / factor;  // long wavelengths: fully interpolated
    } else if (wavelen >= high_freq_wavelen) {
      const double smooth = (old_len / wavelen - low) / (high - low);
      inv = (1.0 - smooth) * inv / factor + smooth * inv;
    }  // short wavelengths (< high_freq_wavelen) stay as they are
  }
}

}  // namespace

std::vector<float> rope_inv_freq(const RopeConfig& rope, int64_t head_dim, const std::string& config_file) {
  if (head_dim <= 0 || head_dim % 2 != 0)
    throw Error("head_dim " + std::to_string(head_dim) + " must be positive and even for rotary embeddings",
                config_file);
  std::vector<double> f = default_inv_freq(rope.theta, head_dim);
  if (rope.type == "linear") {
    if (!(rope.factor > 0))
      throw Error("linear rope_scaling needs factor > 0 (got " + std::to_string(rope.factor) + ")", config_file);
    for (double& inv : f) inv /= rope.factor;
  } else if (rope.type == "llama3") {
    llama3_scale(f, rope, config_file);
  } else if (rope.type != "default") {
    throw Error("rope type '" + rope.type + "' is not supported by the engine (supported: default, linear, llama3)",
                config_file);
  }
  return std::vector<float>(f.begin(), f.end());
}

}  // namespace upcycle::model
