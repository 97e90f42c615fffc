// `upcycle import` end to end on hand-built GGUF files: a tiny llama imports with llama.cpp's rotary
// interleave undone row by row (values checked against a hand-computed order), and every bad file
// gives one line `upcycle: error: …` naming the file and the key or tensor, exit 2, nothing written.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>

#include "io/safetensors.h"
#include "support/gguf_builder.h"
#include "support/test_support.h"

namespace upcycle {
namespace {
namespace fs = std::filesystem;
using test::GgufBuilder;
using test::ScratchDir;

constexpr uint32_t kF32 = 0;
constexpr int64_t kVocab = 8, kHidden = 32, kHeads = 2, kKvHeads = 1, kHeadDim = 16, kFfn = 32;

// The tensors of a 1-layer llama (name → ne), each filled with value(name, i) = 1000·tag + i.
std::vector<std::pair<std::string, std::vector<uint64_t>>> llama_tensors() {
  return {{"token_embd.weight", {kHidden, kVocab}},
          {"output_norm.weight", {kHidden}},
          {"blk.0.attn_norm.weight", {kHidden}},
          {"blk.0.attn_q.weight", {kHidden, kHeads * kHeadDim}},
          {"blk.0.attn_k.weight", {kHidden, kKvHeads * kHeadDim}},
          {"blk.0.attn_v.weight", {kHidden, kKvHeads * kHeadDim}},
          {"blk.0.attn_output.weight", {kHeads * kHeadDim, kHidden}},
          {"blk.0.ffn_norm.weight", {kHidden}},
          {"blk.0.ffn_gate.weight", {kHidden, kFfn}},
          {"blk.0.ffn_up.weight", {kHidden, kFfn}},
          {"blk.0.ffn_down.weight", {kFfn, kHidden}}};
}

struct Edits {
  std::string arch = "llama";
  std::function<void(std::map<std::string, uint32_t>&)> keys;  // u32 metadata, editable
  std::function<void(std::vector<std::pair<std::string, std::vector<uint64_t>>>&)> tensors;
  uint32_t ffn_up_type = kF32;
  std::string magic = "GGUF";
  size_t cut = 0;  // bytes removed from the end
};

std::string tiny_llama(const Edits& e = {}) {
  std::map<std::string, uint32_t> keys = {{"llama.context_length", 64},       {"llama.embedding_length", kHidden},
                                          {"llama.block_count", 1},           {"llama.feed_forward_length", kFfn},
                                          {"llama.attention.head_count", kHeads}, {"llama.attention.head_count_kv", kKvHeads},
                                          {"llama.rope.dimension_count", kHeadDim}};
  if (e.keys) e.keys(keys);
  auto tensors = llama_tensors();
  if (e.tensors) e.tensors(tensors);
  GgufBuilder b;
  b.header(tensors.size(), keys.size() + 2).kv_string("general.architecture", e.arch);
  b.kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  for (const auto& [k, v] : keys) b.kv_u32(k, v);
  std::string data;
  for (size_t t = 0; t < tensors.size(); ++t) {
    const auto& [name, ne] = tensors[t];
    uint64_t n = 1;
    for (uint64_t d : ne) n *= d;
    const bool iq4 = name == "blk.0.ffn_up.weight" && e.ffn_up_type != kF32;
    b.tensor(name, ne, iq4 ? e.ffn_up_type : kF32, data.size());
    if (iq4) {
      data += std::string(n / 32 * 18, '\0');  // IQ4_NL: 18 bytes per 32 values
    } else {
      for (uint64_t i = 0; i < n; ++i) {
        const float v = float(1000 * t + i);
        data.append(reinterpret_cast<const char*>(&v), 4);
      }
    }
    while (data.size() % 32) data += '\0';
  }
  std::string bytes = b.finish(data);
  std::memcpy(bytes.data(), e.magic.data(), 4);
  return bytes.substr(0, bytes.size() - e.cut);
}

std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::recursive_directory_iterator(dir)) names.push_back(e.path().lexically_relative(dir).string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(GgufImportCli, UndoesTheRotaryInterleaveOfQAndK) {
  ScratchDir dir;
  test::write_bytes(dir / "m.gguf", tiny_llama());
  auto r = test::run_upcycle({"import", (dir / "m.gguf").string(), (dir / "out").string(), "--skip-tokenizer"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const SafetensorsFile f = SafetensorsFile::open(dir / "out" / "model.safetensors");
  auto row0 = [&](const std::string& name, int64_t row) {
    const TensorInfo* t = f.find(name);
    EXPECT_NE(t, nullptr) << name;
    float v;
    std::memcpy(&v, f.data(*t).data() + row * kHidden * 4, 4);
    return v;
  };
  // GGUF row 2j+t of a head is HF row t·S/2 + j (S = 16): HF row r comes from GGUF row
  // 2·(r mod 8) + r/8 of the same head; value = 1000·tag + row·32 for the first element of a row.
  for (int64_t head = 0; head < kHeads; ++head)
    for (int64_t r = 0; r < kHeadDim; ++r) {
      const int64_t gguf_row = head * kHeadDim + 2 * (r % (kHeadDim / 2)) + r / (kHeadDim / 2);
      EXPECT_EQ(row0("model.layers.0.self_attn.q_proj.weight", head * kHeadDim + r), float(3000 + gguf_row * kHidden));
    }
  for (int64_t r = 0; r < kHeadDim; ++r)
    EXPECT_EQ(row0("model.layers.0.self_attn.k_proj.weight", r), float(4000 + (2 * (r % 8) + r / 8) * kHidden));
  EXPECT_EQ(row0("model.layers.0.self_attn.v_proj.weight", 5), float(5000 + 5 * kHidden));  // v is not permuted
  EXPECT_EQ(f.find("lm_head.weight"), nullptr);  // no output.weight: tied
}

struct BadGguf {
  std::string name;
  Edits edits;
  std::vector<std::string> extra_args;
  std::vector<std::string> expected;
};
void PrintTo(const BadGguf& c, std::ostream* os) { *os << c.name; }

std::vector<BadGguf> bad_files() {
  std::vector<BadGguf> cases;
  auto add = [&](std::string name, Edits e, std::vector<std::string> expected, std::vector<std::string> args = {"--skip-tokenizer"}) {
    cases.push_back({std::move(name), std::move(e), std::move(args), std::move(expected)});
  };
  Edits e;
  e.magic = "GGML";
  add("bad_magic", e, {"not a GGUF file: bad magic"});
  e = {};
  e.cut = 40;
  add("truncated", e, {"tensor 'blk.0.ffn_down.weight' needs data bytes", "truncated"});
  e = {};
  e.arch = "gpt2";
  add("unknown_architecture", e, {"unsupported architecture 'gpt2'", "general.architecture"});
  e = {};
  e.keys = [](auto& k) { k.erase("llama.embedding_length"); };
  add("missing_key", e, {"missing metadata key 'llama.embedding_length'"});
  e = {};
  e.keys = [](auto& k) { k["llama.block_count"] = 1u << 30; };  // must not size anything
  add("huge_block_count", e, {"key 'llama.block_count' is 1073741824 but the file holds only 11 tensors"});
  e = {};
  e.keys = [](auto& k) { k["llama.rope.dimension_count"] = 8; };
  add("partial_rotary", e, {"key 'llama.rope.dimension_count' is 8", "partial rotary"});
  e = {};
  e.ffn_up_type = 20;  // IQ4_NL
  add("unsupported_type", e, {"tensor 'blk.0.ffn_up.weight' has type IQ4_NL", "Q6_K"});
  e = {};
  e.tensors = [](auto& t) { t.erase(t.begin() + 9); };
  add("missing_tensor", e, {"missing tensor 'blk.0.ffn_up.weight' (for model.layers.0.mlp.up_proj.weight)"});
  e = {};
  e.tensors = [](auto& t) { t.push_back({"blk.0.extra.weight", {kHidden}}); };
  add("unexpected_tensor", e, {"unexpected tensor 'blk.0.extra.weight'"});
  e = {};
  e.tensors = [](auto& t) { t[3].second = {kHidden, 16}; };
  add("wrong_shape", e, {"tensor 'blk.0.attn_q.weight' has shape [16, 32]", "expected [32, 32]"});
  add("no_tokenizer", {}, {"the file has no tokenizer", "--skip-tokenizer"}, {});
  return cases;
}

class GgufImportBadFile : public ::testing::TestWithParam<BadGguf> {};

TEST_P(GgufImportBadFile, OneLineErrorExitTwoNoOutput) {
  const BadGguf& c = GetParam();
  ScratchDir root;
  const fs::path gguf = root / "bad.gguf";
  test::write_bytes(gguf, tiny_llama(c.edits));
  std::vector<std::string> args = {"import", gguf.string(), (root / "out").string()};
  args.insert(args.end(), c.extra_args.begin(), c.extra_args.end());
  const auto before = listing(root.path());
  const auto r = test::run_upcycle(args);
  if (std::getenv("UPCYCLE_SHOW_ERRORS")) std::fprintf(stderr, "%-22s %s", c.name.c_str(), r.err.c_str());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  ASSERT_TRUE(r.err.rfind("upcycle: error: ", 0) == 0) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(gguf.string()), std::string::npos) << r.err;
  for (const auto& s : c.expected) EXPECT_NE(r.err.find(s), std::string::npos) << "missing '" << s << "' in: " << r.err;
  EXPECT_EQ(listing(root.path()), before) << "the failed import left files behind";
}

INSTANTIATE_TEST_SUITE_P(Catalogue, GgufImportBadFile, ::testing::ValuesIn(bad_files()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace upcycle
