// k-means router rows from calibration text (see router_kmeans.h).
#include "recipes/router_kmeans.h"

#include <algorithm>
#include <string>

#include "backend/backend.h"
#include "core/error.h"
#include "core/file_util.h"
#include "data/tokenizer.h"
#include "io/model_config.h"
#include "model/load_model.h"
#include "recipes/kmeans.h"

namespace upcycle::recipes {

std::vector<std::vector<float>> kmeans_router_rows(model::Transformer& base, std::span<const int32_t> tokens,
                                                   int64_t E, std::span<const int64_t> layers, uint64_t seed,
                                                   double row_norm) {
  const int64_t N = int64_t(tokens.size()), D = base.config().hidden_size;
  UPCYCLE_CHECK(!base.config().is_moe(), "the k-means router init runs the dense base model");
  UPCYCLE_CHECK(E >= 1 && N >= E, "k-means needs at least as many calibration tokens as experts");
  // FFN inputs of every selected layer for all N tokens: [layers][N·D].
  std::vector<std::vector<float>> x(layers.size(), std::vector<float>(size_t(N * D)));
  for (int64_t start = 0; start < N; start += kCalibrationSeqLen) {
    const int64_t T = std::min(kCalibrationSeqLen, N - start);
    base.forward(tokens.data() + start, 1, T);
    for (size_t i = 0; i < layers.size(); ++i)  // the readback, straight into place
      base.backend().download(x[i].data() + start * D, base.ffn_inputs(layers[i]), size_t(T * D) * sizeof(float));
  }
  std::vector<std::vector<float>> rows(layers.size(), std::vector<float>(size_t(E * D)));
  for (size_t i = 0; i < layers.size(); ++i) {
    const KMeansResult km = spherical_kmeans(x[i].data(), N, D, E, seed,
                                             "model.layers." + std::to_string(layers[i]) + ".router.kmeans");
    for (size_t j = 0; j < rows[i].size(); ++j) rows[i][j] = float(km.centroids_KD[j] * row_norm);
  }
  return rows;
}

std::vector<int32_t> calibration_token_ids(const std::filesystem::path& base, const std::filesystem::path& calibration,
                                           int64_t max_tokens, int64_t min_tokens, const std::string& min_what) {
  const std::string text = read_text_file(calibration, "calibration text");
  const ModelConfig config = read_model_config(base);
  const data::Tokenizer tok = data::Tokenizer::load(base / "tokenizer.json");
  std::vector<int32_t> ids;
  if (auto bos = tok.bos_id()) ids.push_back(*bos);
  std::vector<int32_t> body;
  try {
    body = tok.encode(text, data::AddSpecial::kNo);
  } catch (const Error& e) {  // e.g. invalid UTF-8: name the calibration file, not the tokenizer
    throw Error(std::string("calibration text: ") + e.what(), calibration.string());
  }
  ids.insert(ids.end(), body.begin(), body.end());
  if (int64_t(ids.size()) > max_tokens) ids.resize(size_t(max_tokens));
  if (int64_t(ids.size()) < min_tokens)
    throw Error("calibration text gives " + std::to_string(ids.size()) + " tokens, fewer than the " + min_what,
                calibration.string());
  for (int32_t id : ids)
    if (id < 0 || id >= config.vocab_size)
      throw Error("token id " + std::to_string(id) + " outside the model's vocabulary [0, " +
                      std::to_string(config.vocab_size) + ")",
                  calibration.string());
  return ids;
}

std::vector<std::vector<float>> kmeans_router_rows_from_files(const std::filesystem::path& base,
                                                              const std::filesystem::path& calibration,
                                                              int64_t max_tokens, int64_t E,
                                                              std::span<const int64_t> layers, uint64_t seed,
                                                              double row_norm) {
  const std::vector<int32_t> ids =
      calibration_token_ids(base, calibration, max_tokens, E, std::to_string(E) + " experts to cluster them into");
  const ModelConfig config = read_model_config(base);
  std::unique_ptr<backend::Backend> be = backend::make_backend(backend::BackendKind::kCpu);
  std::unique_ptr<model::Transformer> model = model::load_transformer(config, base, *be);
  return kmeans_router_rows(*model, ids, E, layers, seed, row_norm);
}

}  // namespace upcycle::recipes
