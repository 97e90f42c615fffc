// Checkpoint writing: byte-exact output against a hand-written file, sharding boundaries and index
// text, pieces in any order, completeness checks, f32 conversion and copies from source files.
#include "io/checkpoint_writer.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "io/checkpoint.h"
#include "support/expect_error.h"
#include "support/test_support.h"

namespace upcycle {
namespace {

using test::as_bytes;
using test::as_string;
using test::bytes_of;
using test::ScratchDir;


std::vector<float> ramp(size_t n) {
  std::vector<float> values(n);
  for (size_t i = 0; i < n; ++i) values[i] = 0.001f * static_cast<float>(i) - 7.3f;
  return values;
}

CheckpointWriterOptions shard_limit(uint64_t bytes) {
  CheckpointWriterOptions options;
  options.max_shard_bytes = bytes;
  return options;
}

template <typename T>
std::vector<T> read_elements(const SafetensorsFile& file, std::string_view name) {
  auto bytes = file.data(*file.find(name));
  std::vector<T> out(bytes.size() / sizeof(T));
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

TEST(CheckpointWriter, ByteExactSmallFile) {
  ScratchDir dir;
  CheckpointWriterOptions options;
  options.metadata = {{"source", "test"}};
  CheckpointWriter writer(dir.path(), {{"a", DType::kF32, {2}}, {"b", DType::kBF16, {3}}}, options);
  EXPECT_EQ(writer.shard_count(), 1u);
  EXPECT_EQ(writer.total_bytes(), 14u);
  writer.write_f32("b", std::vector<float>{1.0f, 0.1f, -1.0f});
  writer.write("a", as_bytes(bytes_of({0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0})));
  EXPECT_EQ(writer.finish(), std::vector<std::string>{"model.safetensors"});

  // 156 bytes of JSON + 4 spaces: 8 + 160 is a multiple of 8. bf16(0.1) = 0x3dcd (0x3dcccccd rounds up).
  const std::string expected =
      bytes_of({0xa0, 0, 0, 0, 0, 0, 0, 0}) +
      R"({"__metadata__":{"format":"pt","source":"test"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"BF16","shape":[3],"data_offsets":[8,14]}})" +
      "    " + bytes_of({0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, 0x80, 0x3f, 0xcd, 0x3d, 0x80, 0xbf});
  EXPECT_EQ(test::read_bytes(dir / "model.safetensors"), expected);
  EXPECT_FALSE(std::filesystem::exists(dir / kIndexFileName));
}

TEST(CheckpointWriter, ShardsGreedilyAndWritesIndex) {
  ScratchDir dir;
  // Limit 100: [m.2 40 + m.10 40], [m.1 40], [big 300 alone, over the limit], [a 8].
  std::vector<TensorDecl> plan{{"m.2", DType::kU8, {40}},
                               {"m.10", DType::kU8, {4, 10}},
                               {"m.1", DType::kU8, {40}},
                               {"big", DType::kU8, {300}},
                               {"a", DType::kU8, {8}}};
  CheckpointWriter writer(dir.path(), plan, shard_limit(100));
  EXPECT_EQ(writer.shard_count(), 4u);
  EXPECT_EQ(writer.total_bytes(), 428u);
  for (size_t i = 0; i < plan.size(); ++i)
    writer.write(plan[i].name, as_bytes(std::string(shape_numel(plan[i].shape), static_cast<char>('A' + i))));
  const std::vector<std::string> files{"model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors",
                                       "model-00003-of-00004.safetensors", "model-00004-of-00004.safetensors",
                                       "model.safetensors.index.json"};
  EXPECT_EQ(writer.finish(), files);
  EXPECT_EQ(test::read_bytes(dir / kIndexFileName), R"({
  "metadata": {
    "total_size": 428
  },
  "weight_map": {
    "a": "model-00004-of-00004.safetensors",
    "big": "model-00003-of-00004.safetensors",
    "m.1": "model-00002-of-00004.safetensors",
    "m.10": "model-00001-of-00004.safetensors",
    "m.2": "model-00001-of-00004.safetensors"
  }
}
)");

  auto checkpoint = Checkpoint::open(dir.path());
  EXPECT_TRUE(checkpoint.sharded());
  ASSERT_EQ(checkpoint.shards().size(), 4u);
  EXPECT_EQ(checkpoint.total_tensor_bytes(), 428u);
  for (const auto& shard : checkpoint.shards()) {
    EXPECT_EQ(shard.data_offset() % 8, 0u);
    EXPECT_EQ(shard.metadata().at("format"), "pt");
  }
  EXPECT_EQ(checkpoint.shards()[0].tensors().size(), 2u);
  EXPECT_EQ(checkpoint.find("m.10")->info->shape, (Shape{4, 10}));
  for (size_t i = 0; i < plan.size(); ++i) {
    const TensorRef* ref = checkpoint.find(plan[i].name);
    ASSERT_NE(ref, nullptr);
    EXPECT_EQ(as_string(ref->file->data(*ref->info)),
              std::string(shape_numel(plan[i].shape), static_cast<char>('A' + i)));
  }
}

TEST(CheckpointWriter, ExactFitStaysInOneShard) {
  ScratchDir dir;
  CheckpointWriter exact(dir.path(), {{"x", DType::kU8, {50}}, {"y", DType::kU16, {25}}}, shard_limit(100));
  EXPECT_EQ(exact.shard_count(), 1u);
  ScratchDir dir2;
  CheckpointWriter over(dir2.path(), {{"x", DType::kU8, {50}}, {"y", DType::kU8, {51}}}, shard_limit(100));
  EXPECT_EQ(over.shard_count(), 2u);
}

TEST(CheckpointWriter, PiecesInAnyOrder) {
  ScratchDir dir;
  CheckpointWriter writer(
      dir.path(),
      {{"w", DType::kF32, {6}}, {"h", DType::kBF16, {5}}, {"empty", DType::kF16, {0, 3}}, {"s", DType::kI32, {}}});
  const std::string w = "0123456789abcdefghijklmn";
  writer.write("w", as_bytes(w.substr(16, 8)), 16);
  writer.write("w", as_bytes(w.substr(0, 8)));
  writer.write("w", as_bytes(w.substr(8, 8)), 8);
  auto values = ramp(5);
  writer.write_f32("h", std::span(values).subspan(3), 3);
  writer.write_f32("h", std::span(values).first(3));
  writer.write("s", as_bytes(bytes_of({1, 2, 3, 4})));
  writer.finish();

  auto file = SafetensorsFile::open(dir / kSingleFileName);
  EXPECT_EQ(as_string(file.data(*file.find("w"))), w);
  auto h = read_elements<uint16_t>(file, "h");
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(h[i], f32_to_bf16(values[i])) << i;
  EXPECT_TRUE(file.find("s")->shape.empty());
  EXPECT_EQ(as_string(file.data(*file.find("s"))), bytes_of({1, 2, 3, 4}));
  EXPECT_EQ(file.find("empty")->nbytes(), 0u);
}

TEST(CheckpointWriter, RejectsMisuse) {
  ScratchDir dir;
  CheckpointWriter writer(dir.path(), {{"w", DType::kF32, {6}}, {"i", DType::kI32, {2}}});
  const std::string eight(8, 'x');
  writer.write("w", as_bytes(eight));
  EXPECT_THROW(writer.write("w", as_bytes(eight), 4), std::logic_error);   // overlaps bytes 4..8
  EXPECT_THROW(writer.write("w", as_bytes(eight), 20), std::logic_error);  // past the end (24 bytes)
  EXPECT_THROW(writer.write_f32("w", std::vector<float>(2), 5), std::logic_error);
  EXPECT_THROW(writer.write_f32("w", std::vector<float>(1), ~uint64_t{0}), std::logic_error);
  EXPECT_THROW(writer.write("nope", as_bytes(eight)), std::logic_error);
  EXPECT_THROW(writer.write_f32("i", std::vector<float>(2)), std::logic_error);
  writer.write("w", as_bytes(std::string(16, 'y')), 8);  // the rejected pieces recorded nothing
  writer.write("i", as_bytes(eight));
  writer.finish();
  EXPECT_THROW(writer.write("w", as_bytes(eight)), std::logic_error);
  EXPECT_THROW(writer.finish(), std::logic_error);
}

TEST(CheckpointWriter, FinishNamesFirstIncompleteTensor) {
  ScratchDir dir;
  CheckpointWriter writer(dir.path(), {{"a", DType::kU8, {4}}, {"b", DType::kF32, {6}}, {"c", DType::kU8, {4}}});
  writer.write("a", as_bytes("abcd"));
  writer.write("b", as_bytes(std::string(8, 'x')));
  writer.write("b", as_bytes(std::string(12, 'x')), 12);
  EXPECT_UPCYCLE_ERROR(writer.finish(), "tensor 'b' is incomplete: 4 of 24 bytes were never written",
                       (dir / kSingleFileName).string());
}

TEST(CheckpointWriter, WriteF32ConvertsAcrossChunks) {
  ScratchDir dir;
  const size_t n = (size_t{1} << 20) + 3;  // crosses the 1M-element conversion chunk
  CheckpointWriter writer(dir.path(), {{"bf", DType::kBF16, {int64_t(n)}},
                                       {"f16", DType::kF16, {int64_t(n)}},
                                       {"f32", DType::kF32, {int64_t(n)}},
                                       {"f64", DType::kF64, {3}}});
  auto values = ramp(n);
  values[1] = 0.1f;  // bf16 0x3dcd, f16 0x2e66: hand-computed
  writer.write_f32("bf", values);
  writer.write_f32("f16", values);
  writer.write_f32("f32", values);
  writer.write_f32("f64", std::span(values).first(3));
  writer.finish();

  auto file = SafetensorsFile::open(dir / kSingleFileName);
  auto bf = read_elements<uint16_t>(file, "bf");
  auto f16 = read_elements<uint16_t>(file, "f16");
  ASSERT_EQ(bf.size(), n);
  EXPECT_EQ(bf[1], 0x3dcd);
  EXPECT_EQ(f16[1], 0x2e66);
  size_t mismatches = 0;
  for (size_t i = 0; i < n; ++i) mismatches += bf[i] != f32_to_bf16(values[i]) || f16[i] != f32_to_f16(values[i]);
  EXPECT_EQ(mismatches, 0u);
  EXPECT_EQ(read_elements<float>(file, "f32"), values);
  EXPECT_EQ(read_elements<double>(file, "f64"), (std::vector<double>{values[0], values[1], values[2]}));
}

TEST(CheckpointWriter, ConcurrentWritersToDifferentTensors) {
  ScratchDir dir;
  std::vector<TensorDecl> plan;
  for (int i = 0; i < 8; ++i) plan.push_back({std::string{'t', char('0' + i)}, DType::kBF16, {1000}});
  CheckpointWriter writer(dir.path(), plan, shard_limit(4000));
  auto values = ramp(1000);
  std::vector<std::thread> threads;
  for (const auto& decl : plan)
    threads.emplace_back([&, name = decl.name] {
      for (size_t j = 0; j < 1000; j += 100) writer.write_f32(name, std::span(values).subspan(j, 100), j);
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(writer.finish().size(), 5u);  // 4 shards + index
  auto checkpoint = Checkpoint::open(dir.path());
  auto bytes = checkpoint.find("t7")->file->data(*checkpoint.find("t7")->info);
  uint16_t last;
  std::memcpy(&last, bytes.data() + 1998, 2);
  EXPECT_EQ(last, f32_to_bf16(values[999]));
}

// 20k tensors: guards against quadratic header handling (nlohmann's ordered_json and callback parser
// both are), which would take minutes here.
TEST(CheckpointWriter, ManyTensorsRoundTrip) {
  ScratchDir dir;
  std::vector<TensorDecl> plan;
  for (int i = 0; i < 20000; ++i) plan.push_back({"layers." + std::to_string(i) + ".w", DType::kF32, {1}});
  CheckpointWriter writer(dir.path(), plan, shard_limit(40000));
  for (int i = 0; i < 20000; ++i) writer.write_f32(plan[i].name, std::vector<float>{float(i)});
  EXPECT_EQ(writer.finish().size(), 3u);
  auto checkpoint = Checkpoint::open(dir.path());
  ASSERT_EQ(checkpoint.tensors().size(), 20000u);
  const TensorRef* last = checkpoint.find("layers.19999.w");
  float value;
  std::memcpy(&value, last->file->data(*last->info).data(), 4);
  EXPECT_EQ(value, 19999.0f);
}

TEST(CheckpointWriter, CopyFromSourceFile) {
  ScratchDir src_dir, dir;
  const size_t n = (size_t{1} << 20) + 7;
  auto values = ramp(n);
  {
    CheckpointWriter source(src_dir.path(),
                            {{"h", DType::kBF16, {5}}, {"w", DType::kF32, {int64_t(n)}}, {"i", DType::kI64, {3}}});
    source.write_f32("w", values);
    source.write_f32("h", std::span(values).first(5));
    source.write("i", as_bytes(std::string(24, 'i')));
    source.finish();
  }
  auto source = SafetensorsFile::open(src_dir / kSingleFileName);
  CheckpointWriter writer(dir.path(), {{"w_copy", DType::kF32, {1, int64_t(n)}},
                                       {"w_bf16", DType::kBF16, {int64_t(n)}},
                                       {"h_f32", DType::kF32, {5}},
                                       {"i_copy", DType::kI64, {3}}});
  writer.copy_from("w_copy", source, *source.find("w"));
  writer.copy_from("w_bf16", source, *source.find("w"));
  writer.copy_from("h_f32", source, *source.find("h"));
  writer.copy_from("i_copy", source, *source.find("i"));
  writer.finish();

  auto out = SafetensorsFile::open(dir / kSingleFileName);
  EXPECT_EQ(read_elements<float>(out, "w_copy"), values);
  auto bf = read_elements<uint16_t>(out, "w_bf16");
  size_t mismatches = 0;
  for (size_t i = 0; i < n; ++i) mismatches += bf[i] != f32_to_bf16(values[i]);
  EXPECT_EQ(mismatches, 0u);
  auto h = read_elements<float>(out, "h_f32");
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(h[i], bf16_to_f32(f32_to_bf16(values[i])));
  EXPECT_EQ(as_string(out.data(*out.find("i_copy"))), std::string(24, 'i'));
}

TEST(CheckpointWriter, CopyFromRejectsMismatches) {
  ScratchDir dir;
  test::write_safetensors_raw(
      dir / "src.safetensors",
      R"({"h":{"dtype":"BF16","shape":[5],"data_offsets":[0,10]},"i":{"dtype":"I64","shape":[1],"data_offsets":[10,18]}})",
      std::string(18, 'x'));
  auto source = SafetensorsFile::open(dir / "src.safetensors");
  ScratchDir out;
  CheckpointWriter writer(out.path(), {{"h4", DType::kBF16, {4}}, {"f", DType::kF32, {1}}});
  EXPECT_UPCYCLE_ERROR(writer.copy_from("h4", source, *source.find("h")),
                       "cannot copy tensor 'h' into 'h4': it has 5 elements, the output declares 4",
                       source.path().string());
  EXPECT_UPCYCLE_ERROR(writer.copy_from("f", source, *source.find("i")), "cannot convert I64 to F32",
                       source.path().string());
}

TEST(CheckpointWriter, ConstructionErrors) {
  ScratchDir dir;
  const std::string d = dir.path().string();
  EXPECT_UPCYCLE_ERROR(CheckpointWriter(dir.path(), {}), "no tensors to write", d);
  EXPECT_UPCYCLE_ERROR(CheckpointWriter(dir.path(), {{"a", DType::kU8, {1}}, {"a", DType::kU8, {1}}}),
                       "tensor 'a' is declared twice", d);
  EXPECT_UPCYCLE_ERROR(CheckpointWriter(dir.path(), {{"__metadata__", DType::kU8, {1}}}), "reserved", d);
  test::write_bytes(dir / kSingleFileName, "old");
  EXPECT_UPCYCLE_ERROR(CheckpointWriter(dir.path(), {{"a", DType::kU8, {1}}}), "cannot create shard: File exists",
                       (dir / kSingleFileName).string());
  EXPECT_UPCYCLE_ERROR(CheckpointWriter(dir / "absent", {{"a", DType::kU8, {1}}}), "cannot create shard",
                       (dir / "absent" / kSingleFileName).string());
}

// A file size limit stands in for a full disk: the writer must fail while sizing the shard, naming it.
TEST(CheckpointWriter, ReservesShardSpaceUpFront) {
  ScratchDir dir;
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    struct rlimit limit {
      1 << 20, 1 << 20
    };
    ::setrlimit(RLIMIT_FSIZE, &limit);
    try {
      CheckpointWriter writer(dir.path(), {{"big", DType::kU8, {8 << 20}}});
    } catch (const Error& e) {
      bool named = e.file() == (dir / kSingleFileName).string();
      ::_exit(named && std::string(e.what()).find("too large") != std::string::npos ? 0 : 2);
    }
    ::_exit(1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace upcycle
