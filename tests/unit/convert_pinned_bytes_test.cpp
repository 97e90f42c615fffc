// The exact output bytes of every computing recipe, pinned: a SHA-256 over the tensor data of small
// deterministic conversions (drop, noise, random, shuffled split, cube-root scaling, mergekit noise and
// residual scales, a qwen2_moe shared expert, from-scratch, and bf16 → f16 conversion on the copy and the
// computing paths). The digests were recorded with the scalar, single-pass code before issue 22's
// speed-ups (vectorised conversions, pair-shared normals, parallel fills, the pipelined writer), so any
// optimisation that changes one value fails here. The four cases after the comment in kCases (wide shuffled
// split, wide cube-root scaling into f16, contiguous G = 2 into f32, a wide qwen2_moe shared expert) were
// recorded with the fp32 route before gather_neurons and the dense read-ahead replaced it. The source is a bf16 Llama with F = 198 (odd expert
// widths 99 and 33 exercise unpaired normal draws and vector tails), written by write_random_weights; the wide
// cases are large enough for the multithreaded paths.
// The v2 cases pin normal stream v2 (--rng-version 2); every other case runs v1 (--rng-version 1).
// Digests cover tensor names, dtypes, shapes and data, not the header (which records the scratch path).
#include <gtest/gtest.h>
#include <omp.h>

#include <functional>
#include <string>

#include "core/file_util.h"
#include "core/sha256.h"
#include "io/checkpoint.h"
#include "io/model_presets.h"
#include "io/random_init.h"
#include "recipes/converter.h"
#include "support/test_support.h"

namespace upcycle::recipes {
namespace {
namespace fs = std::filesystem;
using test::ScratchDir;

// wide: D = 256, F = 1102, so a dense FFN matrix (282,112 elements) takes the parallel code paths.
fs::path make_bf16_dense(const fs::path& dir, Family family, bool wide) {
  ModelConfig c = preset_config(family, "tiny");
  c.dtype = DType::kBF16;
  c.intermediate_size = wide ? 1102 : 198;
  if (wide) c.hidden_size = 256;
  fs::create_directories(dir);
  write_model_config(dir, c);
  write_text_file(dir / "tokenizer.json", "{\"model\": {\"type\": \"BPE\"}}\n");
  RandomInitOptions init;
  init.seed = 11, init.show_progress = false;
  write_random_weights(c, init, dir);
  return dir;
}

std::string tensor_digest(const fs::path& dir) {
  Checkpoint ckpt = Checkpoint::open(dir);
  Sha256 h;
  for (const auto& [name, ref] : ckpt.tensors()) {
    std::string head = name + "|" + std::string(dtype_name(ref.info->dtype));
    for (int64_t d : ref.info->shape) head += "|" + std::to_string(d);
    h.update(head.data(), head.size() + 1);  // with the NUL: names cannot run into data
    auto bytes = ref.file->data(*ref.info);
    h.update(bytes.data(), bytes.size());
  }
  return h.hex_digest();
}

struct PinnedCase {
  const char* name;
  Family family;
  bool wide;
  std::function<void(ConvertSpec&)> tweak;
  const char* sha256;
};

const PinnedCase kCases[] = {
    {"drop", Family::kLlama, false, [](ConvertSpec& s) { s.expert_init = ExpertInit::kDrop; }, "25c2a7c9c3b6f2dc92c5a394ec15640b9504c8bc341c4a2083a58c07cbc552e3"},
    {"drop_slice_stats_matrix_scope", Family::kLlama, false,
     [](ConvertSpec& s) {
       s.expert_init = ExpertInit::kDrop, s.drop_ratio = 0.3;
       s.drop_stats = DropStats::kSlice, s.drop_scope = DropScope::kMatrix;
     },
     "2db909acfcb80dc02f0411523d0a4f0a721d0c8d373f5cdee2c446c993836cf1"},
    {"noise", Family::kLlama, false, [](ConvertSpec& s) { s.expert_init = ExpertInit::kNoise, s.noise_std = 0.05; }, "b0a6250b1dca0abbf68df18f23538fc256a975b8d680a813efd4a84d1b84381a"},
    {"random", Family::kLlama, false, [](ConvertSpec& s) { s.expert_init = ExpertInit::kRandom; }, "f159710910cca6d844cb802cf984f796154caf7e708134e9c73a3c077c6fdb0f"},
    {"shuffled_split", Family::kLlama, false, [](ConvertSpec& s) { s.granularity = 2, s.split = ExpertSplit::kShuffled; }, "5546dcf5ac5dc05c16269a118d6fe331e3555ada75d61cfa09f4a2731292461f"},
    {"drop_fine_grained_g3", Family::kLlama, false,
     [](ConvertSpec& s) { s.granularity = 3, s.experts = 6, s.expert_init = ExpertInit::kDrop; }, "29e6cc871e0d09a9981d7fb43c8e4db60c6bf0b49ddd5f90c62b03251fae75bc"},
    {"cube_root_scaling", Family::kLlama, false,
     [](ConvertSpec& s) { s.granularity = 2, s.scaling_mode = ScalingMode::kCubeRoot; }, "fb53b1019a6b10475bde75ae076386bcfd38d9bef206e224eb45cd4f1e7b999e"},
    {"mergekit_noise_residual", Family::kLlama, false,
     [](ConvertSpec& s) {
       s.expert_noise_std = {0.01, 0.0, 0.02, 0.01};
       s.expert_residual_scale = {1.0, 0.5, 1.0, 2.0};
     },
     "85de67199ca882393a5b7c62aec51288b20a79c5bbffd00a98123c386c7e4e4a"},
    {"qwen2_shared_shuffled_drop", Family::kQwen2, false,
     [](ConvertSpec& s) {
       s.experts = 6, s.granularity = 2, s.shared_experts = 1;
       s.split = ExpertSplit::kShuffled, s.expert_init = ExpertInit::kDrop;
     },
     "0c1d21eab99db8cf6e063a8f336bd602ecbfec53657aa6e5d674d61b799be6de"},
    {"wide_drop", Family::kLlama, true, [](ConvertSpec& s) { s.expert_init = ExpertInit::kDrop; }, "b499863797b8a75f6c86c5182794a1186bb59b353ac5ebbe18a57d706ef354ed"},
    {"wide_noise_shuffled_g2", Family::kLlama, true,
     [](ConvertSpec& s) { s.expert_init = ExpertInit::kNoise, s.granularity = 2, s.split = ExpertSplit::kShuffled; }, "e44cbca440e183cc471bc9777922bdc02c5cd50f1a5e62b346b65bacc5333712"},
    {"wide_random_to_f16", Family::kLlama, true,
     [](ConvertSpec& s) { s.expert_init = ExpertInit::kRandom, s.dtype = DType::kF16; }, "b80dd09dafdfcffaa35c0db185d6c250a51cbff2e249b4fd513a3869819e272a"},
    {"wide_mergekit_noise_residual", Family::kLlama, true,
     [](ConvertSpec& s) {
       s.expert_noise_std = {0.01, 0.0, 0.02, 0.01};
       s.expert_residual_scale = {1.0, 0.5, 1.0, 2.0};
     },
     "c5fd6d0113f0c30a488d96f1258f43bfeda8e539d01f217186c1ad763b05cd2e"},
    // Recorded with the fp32 route before gather_neurons (stored-dtype gathers, read-ahead) replaced it.
    {"wide_shuffled_g2", Family::kLlama, true, [](ConvertSpec& s) { s.granularity = 2, s.split = ExpertSplit::kShuffled; }, "fd251e8a95b6d22fe0fd000054eaa12443c07b230653fb9177707ff2e47aead5"},
    {"wide_cube_root_g2_to_f16", Family::kLlama, true,
     [](ConvertSpec& s) { s.granularity = 2, s.scaling_mode = ScalingMode::kCubeRoot, s.dtype = DType::kF16; }, "e3d120065640fa13490c38cd56e5773eafc8fdca9c69fead8209b58403f81349"},
    {"contiguous_g2_to_f32", Family::kLlama, false, [](ConvertSpec& s) { s.granularity = 2, s.dtype = DType::kF32; }, "b21e7d98760422e91ec91e47f9fc81f8337e6c379f33dc771f4abac48b52614a"},
    {"qwen2_shared_shuffled", Family::kQwen2, true,
     [](ConvertSpec& s) { s.experts = 6, s.granularity = 2, s.shared_experts = 1, s.split = ExpertSplit::kShuffled; }, "9eb479204e7185f4f2f144b7d01bbcd6358d0fd7bc5429dafb9f9832c90e9a4c"},
    {"from_scratch", Family::kLlama, false, [](ConvertSpec& s) { s.from_scratch = FromScratch::kYes; }, "4119d2d24d89b3075b45ca2d2e95309f4d1b07f4f1865a8f2ea0774ce3794dfc"},
    // Normal stream v2 (the default since it exists; the cases above pin v1): recorded with this branch's
    // first v2 code, whose vector paths tests/unit/normal_v2_test.cpp holds to the portable one.
    {"v2_drop", Family::kLlama, false, [](ConvertSpec& s) { s.rng_version = RngVersion::kV2, s.expert_init = ExpertInit::kDrop; }, "945f7a7dd669eb535d2fad93495ad27ab73dedeab1322a6bd2ad75cdef31be43"},
    {"v2_noise", Family::kLlama, false,
     [](ConvertSpec& s) { s.rng_version = RngVersion::kV2, s.expert_init = ExpertInit::kNoise, s.noise_std = 0.05; }, "97b92c2803f54322859cc45bd24e6f28401edb5c56ff11049e1108911e4292f3"},
    {"v2_random", Family::kLlama, false, [](ConvertSpec& s) { s.rng_version = RngVersion::kV2, s.expert_init = ExpertInit::kRandom; }, "6f096c4286c3d342b2b07f13e5c0dfb7ea7acbef03bc0bd2096060fc72af6bf4"},
    {"v2_mergekit_noise_residual", Family::kLlama, false,
     [](ConvertSpec& s) {
       s.rng_version = RngVersion::kV2;
       s.expert_noise_std = {0.01, 0.0, 0.02, 0.01};
       s.expert_residual_scale = {1.0, 0.5, 1.0, 2.0};
     },
     "b3c7f5808b895132f25814d1684441a23614eed1e93684f2aec74a093a894915"},
    {"v2_wide_drop_slice_stats_matrix_scope", Family::kLlama, true,
     [](ConvertSpec& s) {
       s.rng_version = RngVersion::kV2, s.expert_init = ExpertInit::kDrop, s.drop_ratio = 0.3;
       s.drop_stats = DropStats::kSlice, s.drop_scope = DropScope::kMatrix;
     },
     "f0bd6e527f9cb1487a79ad0d136fdeb0586527c2bc0b4ce060fed37f6d73bfcf"},
    {"v2_wide_random_to_f16", Family::kLlama, true,
     [](ConvertSpec& s) { s.rng_version = RngVersion::kV2, s.expert_init = ExpertInit::kRandom, s.dtype = DType::kF16; }, "e6c803eab56d2eac748b28161df66456fecde372d6c1c2554dcc5859bf3fab29"},
    // The converter's row-by-row path for drawn experts (kept neurons verbatim, re-drawn ones converted
    // in place, written in blocks from every thread): recorded with the whole-matrix fp32 route before it.
    {"v2_wide_drop", Family::kLlama, true, [](ConvertSpec& s) { s.rng_version = RngVersion::kV2, s.expert_init = ExpertInit::kDrop; }, "15488245a3ba989d9c35cc00ee825f51b8db4648095e4751c8c83a74e04acf30"},
    {"v2_wide_noise", Family::kLlama, true,
     [](ConvertSpec& s) { s.rng_version = RngVersion::kV2, s.expert_init = ExpertInit::kNoise, s.noise_std = 0.05; }, "af9abbb75174da1914cec66e50c8427b8c48eee0b648221c1b276545d878bf36"},
    {"v2_wide_random", Family::kLlama, true, [](ConvertSpec& s) { s.rng_version = RngVersion::kV2, s.expert_init = ExpertInit::kRandom; }, "9cdf731662ae12ece243fd8a3bd5e5e5060688451c0d18856861fdcc3aedcdb7"},
    {"v2_wide_drop_cube_root_g2", Family::kLlama, true,
     [](ConvertSpec& s) {
       s.rng_version = RngVersion::kV2, s.expert_init = ExpertInit::kDrop;
       s.granularity = 2, s.split = ExpertSplit::kShuffled, s.scaling_mode = ScalingMode::kCubeRoot;
     },
     "022c6324914cbdc0843eaeff9af166f3a2e90b8b3d132392c6325e78f279d03c"},
    {"v2_wide_noise_to_f16", Family::kLlama, true,
     [](ConvertSpec& s) { s.rng_version = RngVersion::kV2, s.expert_init = ExpertInit::kNoise, s.dtype = DType::kF16; }, "41fcaad58d4c8698ed8407c803f2ca3a7d4c33d71a8b763246324ba678fd9ce3"},
    {"v2_wide_drop_mergekit_noise_residual", Family::kLlama, true,
     [](ConvertSpec& s) {
       s.rng_version = RngVersion::kV2, s.expert_init = ExpertInit::kDrop;
       s.expert_noise_std = {0.01, 0.0, 0.02, 0.01};
       s.expert_residual_scale = {1.0, 0.5, 1.0, 2.0};
     },
     "a992a266150a6133669a02f3972b317644073a565442e41ab99c74da0cc327ce"},
    {"v2_drop_slice_stats_neuron_scope", Family::kLlama, false,
     [](ConvertSpec& s) { s.rng_version = RngVersion::kV2, s.expert_init = ExpertInit::kDrop, s.drop_stats = DropStats::kSlice; }, "114d9c8acbf9a5027e9e8829247b3e1c47d5198d31d7f02c39eae3b66cfa522b"},
    {"copy_to_f16", Family::kLlama, false, [](ConvertSpec& s) { s.dtype = DType::kF16; }, "7cea043fea328c0724f3f7a2b5d8d36adf845b0044607f50fbf0d1604f3946b8"},
    {"drop_to_f16", Family::kLlama, false, [](ConvertSpec& s) { s.expert_init = ExpertInit::kDrop, s.dtype = DType::kF16; }, "22978e362cb64d2303a011c8a0ccfc102524b738c0410f1d5e1a9869e330701d"},
    {"noise_to_f32", Family::kLlama, false, [](ConvertSpec& s) { s.expert_init = ExpertInit::kNoise, s.dtype = DType::kF32; }, "31313cffeeeec3c86f5044d058cf5601651898105b65ef26ed851c3d681e0e07"},
};

class PinnedBytes : public ::testing::TestWithParam<PinnedCase> {};

// Run with 1 and 2 threads: the bytes may depend on neither.
TEST_P(PinnedBytes, RecipeOutputIsUnchanged) {
  const PinnedCase& pc = GetParam();
  ScratchDir tmp;
  const fs::path dense = make_bf16_dense(tmp / "dense", pc.family, pc.wide);
  ConvertSpec s;
  s.sources = {dense};
  s.experts = 4, s.top_k = 2, s.seed = 5;
  s.rng_version = RngVersion::kV1;  // the v1 cases predate the version; v2 cases set it in tweak
  pc.tweak(s);
  const int threads = omp_get_max_threads();
  for (int t : {1, 2}) {
    omp_set_num_threads(t);
    const fs::path out = tmp / ("moe" + std::to_string(t));
    convert(s, {out, Overwrite::kRefuse, 5'000'000'000ull, ShowProgress::kNo});
    EXPECT_EQ(tensor_digest(out), pc.sha256) << pc.name << " with " << t << " threads";
  }
  omp_set_num_threads(threads);
}

INSTANTIATE_TEST_SUITE_P(Recipes, PinnedBytes, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace upcycle::recipes
