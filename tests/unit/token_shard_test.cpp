// Token shards and dataset directories: byte-exact round trips for uint16 and uint32 shards (the header
// checked against a hand-built byte string), every validation error naming its file, dataset reads
// across shard boundaries against a naive concatenation, and dataset.json / split errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>

#include "core/json.h"
#include "core/sha256.h"
#include "data/token_dataset.h"
#include "data/token_shard.h"
#include "support/expect_error.h"
#include "support/test_support.h"

namespace upcycle::data {
namespace {
namespace fs = std::filesystem;

std::string le(uint64_t v, int bytes) {
  std::string s;
  for (int i = 0; i < bytes; ++i) s += char((v >> (8 * i)) & 0xff);
  return s;
}

std::string shard_bytes(uint32_t version, uint32_t width, uint64_t count, uint64_t vocab, const std::string& data) {
  return std::string("UPCYTOK\0", 8) + le(version, 4) + le(width, 4) + le(count, 8) + le(vocab, 8) + data;
}

std::vector<int32_t> read_all(const TokenShard& s) {
  std::vector<int32_t> out(s.count());
  s.read(0, s.count(), out.data());
  return out;
}

TEST(TokenShard, RoundTripUint16MatchesHandBuiltBytes) {
  test::ScratchDir dir;
  const std::vector<uint32_t> ids = {0, 1, 258, 65535, 7};
  write_token_shard(dir / "a.bin", ids, 65536);
  std::string data;
  for (uint32_t id : ids) data += le(id, 2);
  EXPECT_EQ(test::read_bytes(dir / "a.bin"), shard_bytes(1, 2, 5, 65536, data));
  const TokenShard s = TokenShard::open(dir / "a.bin");
  EXPECT_EQ(s.info().token_bytes, 2u);
  EXPECT_EQ(s.info().vocab_size, 65536u);
  EXPECT_EQ(read_all(s), (std::vector<int32_t>{0, 1, 258, 65535, 7}));
  std::vector<int32_t> mid(2);
  s.read(2, 2, mid.data());
  EXPECT_EQ(mid, (std::vector<int32_t>{258, 65535}));
  s.check_ids(65536);
  EXPECT_UPCYCLE_ERROR(s.check_ids(65535), "token id 65535 at position 3 is ≥ 65535", (dir / "a.bin").string());
  // No temporary file is left beside the shard.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);
}

TEST(TokenShard, RoundTripUint32AndLongUint16) {
  test::ScratchDir dir;
  std::vector<uint32_t> big = {0, 65536, 151668, 3};
  write_token_shard(dir / "b.bin", big, 151669);
  std::string data;
  for (uint32_t id : big) data += le(id, 4);
  EXPECT_EQ(test::read_bytes(dir / "b.bin"), shard_bytes(1, 4, 4, 151669, data));
  EXPECT_EQ(read_all(TokenShard::open(dir / "b.bin")), (std::vector<int32_t>{0, 65536, 151668, 3}));
  // More ids than one internal chunk (65536), and an empty shard.
  std::vector<uint32_t> many(200003);
  for (size_t i = 0; i < many.size(); ++i) many[i] = uint32_t((i * 7919) % 50000);
  write_token_shard(dir / "c.bin", many, 50000);
  const std::vector<int32_t> back = read_all(TokenShard::open(dir / "c.bin"));
  EXPECT_TRUE(std::equal(back.begin(), back.end(), many.begin(), many.end()));
  write_token_shard(dir / "e.bin", {}, 10);
  EXPECT_EQ(TokenShard::open(dir / "e.bin").count(), 0u);
  EXPECT_UPCYCLE_ERROR(write_token_shard(dir / "d.bin", std::vector<uint32_t>{1, 10}, 10),
                       "token id 10 at position 1 is ≥ the vocab size 10", (dir / "d.bin").string());
  EXPECT_FALSE(fs::exists(dir / "d.bin"));
}

TEST(TokenShard, EveryHeaderProblemIsAnErrorNamingTheFile) {
  test::ScratchDir dir;
  const fs::path p = dir / "s.bin";
  const std::string four = le(1, 2) + le(2, 2);
  struct Case {
    std::string bytes, needle;
  };
  const std::vector<Case> cases = {
      {"", "too short for a token shard header"},
      {shard_bytes(1, 2, 2, 10, four).substr(0, 31), "too short"},
      {"UPCYTOX" + shard_bytes(1, 2, 2, 10, four).substr(7), "bad magic"},
      {shard_bytes(2, 2, 2, 10, four), "unsupported token shard version 2"},
      {shard_bytes(1, 3, 2, 10, four + "xx"), "token width 3 bytes is invalid"},
      {shard_bytes(1, 2, 3, 10, four), "does not match the header's 3 tokens of 2 bytes"},   // truncated
      {shard_bytes(1, 2, 1, 10, four), "does not match the header's 1 tokens"},               // trailing bytes
      {shard_bytes(1, 4, uint64_t(1) << 62, 10, four), "does not match"},                     // count·width overflows
      {shard_bytes(1, 2, 2, 0, four), "vocab size 0"},
      {shard_bytes(1, 2, 2, 65537, four), "stores uint16 ids but its vocab size 65537 exceeds 65536"},
  };
  for (const Case& c : cases) {
    test::write_bytes(p, c.bytes);
    EXPECT_UPCYCLE_ERROR(TokenShard::open(p), c.needle, p.string());
  }
  EXPECT_UPCYCLE_ERROR(TokenShard::open(dir / "missing.bin"), "cannot open token shard", (dir / "missing.bin").string());
  EXPECT_UPCYCLE_ERROR(TokenShard::open(dir.path()), "not a regular file", dir.path().string());
  // An id ≥ the header's vocab size: open() passes (it reads no ids), check_ids names the position.
  test::write_bytes(p, shard_bytes(1, 4, 3, 100, le(5, 4) + le(99, 4) + le(100, 4)));
  const TokenShard s = TokenShard::open(p);
  EXPECT_UPCYCLE_ERROR(s.check_ids(s.info().vocab_size), "token id 100 at position 2 is ≥ 100", p.string());
}

// A dataset directory with the given shards per split, written with write_token_shard.
Json write_dataset(const fs::path& dir, const std::vector<std::vector<uint32_t>>& train,
                   const std::vector<std::vector<uint32_t>>& val, uint64_t vocab) {
  fs::create_directories(dir);
  Json splits = Json::object();
  for (auto [name, shards] : {std::pair{"train", &train}, std::pair{"val", &val}}) {
    Json list = Json::array();
    for (size_t i = 0; i < shards->size(); ++i) {
      const std::string file = std::string(name) + "-" + std::to_string(i) + ".bin";
      write_token_shard(dir / file, (*shards)[i], vocab);
      list.push_back({{"file", file}, {"tokens", (*shards)[i].size()}});
    }
    splits[name] = list;
  }
  Json j = {{"format", "upcycle-tokens"}, {"version", 1}, {"domain", "web"}, {"vocab_size", vocab}, {"splits", splits}};
  test::write_bytes(dir / "dataset.json", j.dump());
  return j;
}

TEST(TokenDataset, ReadsAcrossShardBoundariesLikeANaiveConcatenation) {
  test::ScratchDir dir;
  std::vector<std::vector<uint32_t>> shards = {{}, {}, {}, {}};
  const std::vector<size_t> sizes = {5, 1, 0, 9};
  uint32_t next = 0;
  std::vector<int32_t> naive;
  for (size_t s = 0; s < sizes.size(); ++s)
    for (size_t i = 0; i < sizes[s]; ++i) {
      shards[s].push_back((next * 31 + 7) % 1000);
      naive.push_back(int32_t(shards[s].back()));
      ++next;
    }
  write_dataset(dir / "d", shards, {{1, 2, 3}}, 1000);
  const TokenDataset d = open_dataset(dir / "d", Split::kTrain);
  EXPECT_EQ(d.domain, "web");
  EXPECT_EQ(d.vocab_size, 1000u);
  ASSERT_EQ(d.tokens, naive.size());
  for (uint64_t begin = 0; begin <= d.tokens; ++begin)
    for (uint64_t n = 0; begin + n <= d.tokens; ++n) {
      std::vector<int32_t> got(n);
      d.read(begin, n, got.data());
      ASSERT_TRUE(std::equal(got.begin(), got.end(), naive.begin() + long(begin))) << begin << "+" << n;
    }
  EXPECT_EQ(d.locate(5), (std::pair<size_t, uint64_t>{1, 0}));
  EXPECT_EQ(d.locate(6), (std::pair<size_t, uint64_t>{3, 0}));  // the empty shard 2 is skipped
  EXPECT_EQ(d.locate(14), (std::pair<size_t, uint64_t>{3, 8}));
  const TokenDataset v = open_dataset(dir / "d", Split::kVal);
  EXPECT_EQ(v.tokens, 3u);
  d.check_ids(1000);
  EXPECT_UPCYCLE_ERROR(d.check_ids(naive[7] + 0u), "at position 1 is ≥", (dir / "d" / "train-3.bin").string());
}

TEST(TokenDataset, EveryProblemIsAnErrorNamingTheFile) {
  test::ScratchDir dir;
  const fs::path d = dir / "d", json = d / "dataset.json";
  Json good = write_dataset(d, {{1, 2}, {3}}, {}, 1000);
  EXPECT_UPCYCLE_ERROR(open_dataset(d, Split::kVal), "dataset has no val split: tokenize with --val-fraction", json.string());
  EXPECT_UPCYCLE_ERROR(open_dataset(dir / "nope", Split::kTrain), "not a dataset directory", (dir / "nope").string());
  const auto with = [&](const std::function<void(Json&)>& edit) {
    Json j = good;
    edit(j);
    test::write_bytes(json, j.dump());
  };
  with([](Json& j) { j["splits"].erase("train"); });
  EXPECT_UPCYCLE_ERROR(open_dataset(d, Split::kTrain), "dataset has no train split", json.string());
  with([](Json& j) { j["format"] = "other"; });
  EXPECT_UPCYCLE_ERROR(open_dataset(d, Split::kTrain), "\"format\" must be \"upcycle-tokens\"", json.string());
  with([](Json& j) { j["version"] = 7; });
  EXPECT_UPCYCLE_ERROR(open_dataset(d, Split::kTrain), "unsupported dataset.json version 7", json.string());
  with([](Json& j) { j["vocab_size"] = -3; });
  EXPECT_UPCYCLE_ERROR(open_dataset(d, Split::kTrain), "\"vocab_size\" must be a non-negative integer", json.string());
  with([](Json& j) { j["splits"]["train"][0]["file"] = "../train-0.bin"; });
  EXPECT_UPCYCLE_ERROR(open_dataset(d, Split::kTrain), "must be a plain file name", json.string());
  with([](Json& j) { j["splits"]["train"][1]["file"] = "gone.bin"; });
  EXPECT_UPCYCLE_ERROR(open_dataset(d, Split::kTrain), "cannot open token shard", (d / "gone.bin").string());
  with([](Json& j) { j["splits"]["train"][1]["tokens"] = 2; });
  EXPECT_UPCYCLE_ERROR(open_dataset(d, Split::kTrain), "shard holds 1 tokens but dataset.json lists 2",
                       (d / "train-1.bin").string());
  with([](Json& j) { j.erase("domain"); });
  EXPECT_EQ(open_dataset(d, Split::kTrain).domain, "d");  // defaults to the directory name
  // Shards written with another vocabulary.
  test::write_bytes(json, good.dump());
  write_token_shard(d / "train-1.bin", std::vector<uint32_t>{3}, 70000);
  EXPECT_UPCYCLE_ERROR(open_dataset(d, Split::kTrain), "shard's vocab size 70000 differs from dataset.json's 1000",
                       (d / "train-1.bin").string());
  test::write_bytes(json, "{\"format\": ");
  EXPECT_UPCYCLE_ERROR(open_dataset(d, Split::kTrain), "not valid JSON", json.string());
  fs::remove(json);
  EXPECT_UPCYCLE_ERROR(open_dataset(d, Split::kTrain), "cannot read", json.string());
}

TEST(Sha256, KnownVectors) {
  // FIPS 180-4 examples, the empty string, and a message crossing the 55/56-byte padding boundary.
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  Sha256 pieces;  // streamed in uneven pieces = one call
  const std::string text = "The quick brown fox jumps over the lazy dog, again and again and again.";
  for (size_t i = 0; i < text.size(); i += 7) pieces.update(text.data() + i, std::min<size_t>(7, text.size() - i));
  EXPECT_EQ(pieces.hex_digest(), sha256_hex(text));
  test::ScratchDir dir;
  test::write_bytes(dir / "f", "abc");
  EXPECT_EQ(sha256_file_hex(dir / "f", "file"), sha256_hex("abc"));
}

}  // namespace
}  // namespace upcycle::data
