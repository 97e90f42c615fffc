// RUN_DIR/tensorboard/ as a set of files (train/tensorboard_files.h): new names sort after the files
// already there, a resume cuts the earlier files' points past its step (and a torn or corrupt tail),
// the kept bytes stay byte for byte, other writers' files are left alone. Event payloads are built
// here by hand from the protobuf wire format; interop.test_tensorboard_reads_events checks the same
// behaviour through TensorBoard itself.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "support/test_support.h"
#include "train/tensorboard_files.h"
#include "train/tensorboard_writer.h"

namespace upcycle::train {
namespace {
namespace fs = std::filesystem;
using test::ScratchDir;

std::string le(uint64_t value, int bytes) {
  std::string out;
  for (int i = 0; i < bytes; ++i) out.push_back(char((value >> (8 * i)) & 0xff));
  return out;
}

// TFRecord framing (the CRC itself is checked against RFC 3720 in tensorboard_writer_test.cpp).
std::string record(const std::string& data) {
  const std::string length = le(data.size(), 8);
  return length + le(masked_crc32c(length.data(), 8), 4) + data + le(masked_crc32c(data.data(), data.size()), 4);
}

// Event{wall_time = 1 (fixed64), step = 2 (varint, < 128 here), then `rest`}.
std::string event(int step, const std::string& rest) {
  return "\x09" + le(0x41d9000000000000ull, 8) + "\x10" + std::string(1, char(step)) + rest;
}
// summary = 5 {value = 1 {tag = 1 "t", simple_value = 2 (fixed32)}}
std::string scalar_event(int step) { return event(step, test::bytes_of({0x2a, 0x0a, 0x0a, 0x08, 0x0a, 0x01, 't', 0x15, 0, 0, 0x80, 0x3f})); }
std::string version_event() { return event(0, "\x1a\x0d" "brain.Event:2"); }
std::string start_event(int step) { return event(step, test::bytes_of({0x3a, 0x02, 0x08, 0x01})); }

int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

TEST(TensorBoardFiles, NamesSortAfterTheFilesAlreadyThere) {
  ScratchDir scratch;
  const int64_t t = 1700000000;
  EXPECT_EQ(next_event_file_name(scratch.path(), t, "host", 42), "events.out.tfevents.1700000000.host.42.upcycle");
  // The same second from a pid whose digits sort lower ("100" < "99"): the time is raised by one.
  test::write_bytes(scratch / "events.out.tfevents.1700000000.host.99.upcycle", "");
  EXPECT_EQ(next_event_file_name(scratch.path(), t, "host", 100), "events.out.tfevents.1700000001.host.100.upcycle");
  // A clock behind the earlier file's (another machine resuming the run): past the newest name.
  test::write_bytes(scratch / "events.out.tfevents.1700000500.other.7.upcycle", "");
  EXPECT_EQ(next_event_file_name(scratch.path(), t, "host", 100), "events.out.tfevents.1700000501.host.100.upcycle");
  // Already later: the clock's own time.
  EXPECT_EQ(next_event_file_name(scratch.path(), t + 1000, "host", 1), "events.out.tfevents.1700001000.host.1.upcycle");
  // Names that do not share the prefix cannot be outranked by a time and are not compared.
  test::write_bytes(scratch / "zz.tfevents.other", "");
  EXPECT_EQ(next_event_file_name(scratch.path(), t + 1000, "host", 1), "events.out.tfevents.1700001000.host.1.upcycle");
  EXPECT_LT(std::string("events.out.tfevents.1700000500.other.7.upcycle"), "events.out.tfevents.1700000501.host.100.upcycle");
}

TEST(TensorBoardFiles, WriterNamesSortInCreationOrder) {
  ScratchDir scratch;
  // An earlier file named an hour ahead of this machine's clock: every later file sorts after it.
  const std::string ahead = "events.out.tfevents." + std::to_string(now_s() + 3600) + ".elsewhere.1.upcycle";
  test::write_bytes(scratch / ahead, record(version_event()));
  std::vector<std::string> names = {ahead};
  for (int i = 0; i < 3; ++i) {
    TensorBoardWriter writer(scratch.path(), i == 0 ? -1 : 0);
    names.push_back(writer.file().filename().string());
    EXPECT_GT(names.back(), names[names.size() - 2]) << "TensorBoard reads a run's files in name order";
  }
}

TEST(TensorBoardFiles, RecognisesUpcycleNamesOnly) {
  EXPECT_TRUE(is_upcycle_event_file("events.out.tfevents.1700000000.host.42.upcycle"));
  EXPECT_TRUE(is_upcycle_event_file("events.out.tfevents.1700000000.host.42.upcycle.3"));
  EXPECT_FALSE(is_upcycle_event_file("events.out.tfevents.1700000000.host.42.upcycle.x"));
  EXPECT_FALSE(is_upcycle_event_file("events.out.tfevents.1700000000.host.42.upcycle."));
  EXPECT_FALSE(is_upcycle_event_file("events.out.tfevents.1700000000.host.42"));  // TensorFlow's own
  EXPECT_FALSE(is_upcycle_event_file("events.out.tfevents.1700000000.host.42.v2"));
  EXPECT_FALSE(is_upcycle_event_file("x.upcycle"));
}

TEST(TensorBoardFiles, EventHeaderDecodesStepAndSummary) {
  auto header = event_header(scalar_event(7));
  ASSERT_TRUE(header);
  EXPECT_EQ(header->step, 7);
  EXPECT_TRUE(header->summary);
  header = event_header(start_event(9));
  ASSERT_TRUE(header);
  EXPECT_EQ(header->step, 9);
  EXPECT_FALSE(header->summary);
  header = event_header("\x1a\x0d" "brain.Event:2");  // no step field: proto3's default 0
  ASSERT_TRUE(header);
  EXPECT_EQ(header->step, 0);
  // A step past 2^32: a 5-byte varint (0x1_2A05_F200 = 5e9).
  header = event_header(test::bytes_of({0x10, 0x80, 0xe4, 0x97, 0xd0, 0x12}));
  ASSERT_TRUE(header);
  EXPECT_EQ(header->step, 5'000'000'000);
  EXPECT_FALSE(event_header(test::bytes_of({0x10})));              // a key without its varint
  EXPECT_FALSE(event_header(test::bytes_of({0x2a, 0x05, 0x00})));  // a length past the end
  EXPECT_FALSE(event_header(test::bytes_of({0x09, 0x00})));        // a short fixed64
  EXPECT_FALSE(event_header(test::bytes_of({0x0b})));              // a group: not in event.proto
}

TEST(TensorBoardFiles, TrimCutsPointsPastTheStep) {
  ScratchDir scratch;
  const std::string kept = record(version_event()) + record(scalar_event(0)) + record(scalar_event(1)) +
                           record(scalar_event(2)) + record(scalar_event(2));
  const std::string dropped = record(scalar_event(3)) + record(scalar_event(4));
  const fs::path file = scratch / "events.out.tfevents.1700000000.host.1.upcycle";
  test::write_bytes(file, kept + dropped);
  const fs::path untouched = scratch / "events.out.tfevents.1700000001.host.2.upcycle";
  test::write_bytes(untouched, kept);
  const fs::path foreign = scratch / "events.out.tfevents.1700000002.host.3";  // not upcycle's: left alone
  test::write_bytes(foreign, kept + dropped);

  EXPECT_EQ(trim_event_files(scratch.path(), 2), 1);
  EXPECT_EQ(test::read_bytes(file), kept);
  EXPECT_EQ(test::read_bytes(untouched), kept);
  EXPECT_EQ(test::read_bytes(foreign), kept + dropped);
  EXPECT_EQ(trim_event_files(scratch.path(), 2), 0);  // idempotent
  EXPECT_EQ(trim_event_files(scratch.path(), 0), 2);
  EXPECT_EQ(test::read_bytes(file), record(version_event()) + record(scalar_event(0)));
  EXPECT_EQ(trim_event_files(scratch / "absent", 0), 0);  // no tensorboard/ yet: nothing to trim
}

TEST(TensorBoardFiles, TrimKeepsAStartFollowedByStepZero) {
  // A run resumed before its first checkpoint (keep step 0) writes START at 1, then evaluates at step 0;
  // resuming it again from step 0 keeps that evaluation (and the harmless START before it).
  ScratchDir scratch;
  const std::string kept = record(version_event()) + record(start_event(1)) + record(scalar_event(0));
  const fs::path file = scratch / "events.out.tfevents.1700000000.host.1.upcycle.1";
  test::write_bytes(file, kept + record(scalar_event(1)) + record(start_event(2)));
  EXPECT_EQ(trim_event_files(scratch.path(), 0), 1);
  EXPECT_EQ(test::read_bytes(file), kept);
}

TEST(TensorBoardFiles, TrimCutsATornOrCorruptTail) {
  ScratchDir scratch;
  const std::string good = record(version_event()) + record(scalar_event(1));
  const std::string next = record(scalar_event(2));
  const fs::path torn = scratch / "events.out.tfevents.1700000000.host.1.upcycle";
  test::write_bytes(torn, good + next.substr(0, next.size() - 3));  // a write cut short by a crash
  std::string corrupt_bytes = good + next + record(scalar_event(3));
  corrupt_bytes[good.size() + 20] ^= 1;  // a flipped bit in the data of the step-2 record
  const fs::path corrupt = scratch / "events.out.tfevents.1700000001.host.1.upcycle";
  test::write_bytes(corrupt, corrupt_bytes);
  std::string huge = good + next;
  const std::string length = le(1ull << 40, 8);  // a length past the end (with a valid length CRC)
  huge += length + le(masked_crc32c(length.data(), 8), 4) + "xx";
  const fs::path too_long = scratch / "events.out.tfevents.1700000002.host.1.upcycle";
  test::write_bytes(too_long, huge);

  EXPECT_EQ(trim_event_files(scratch.path(), 100), 3);
  EXPECT_EQ(test::read_bytes(torn), good);
  EXPECT_EQ(test::read_bytes(corrupt), good);
  EXPECT_EQ(test::read_bytes(too_long), good + next);
}

TEST(TensorBoardFiles, WriterResumeTrimsTheEarlierFile) {
  ScratchDir scratch;
  fs::path first;
  std::string through_step_2;
  {
    TensorBoardWriter writer(scratch.path(), -1);
    first = writer.file();
    for (int step = 1; step <= 5; ++step) {
      writer.scalar("train/loss", 1.0 / step, step, 1700000000.0 + step);
      writer.scalar("train/lr", 0.1, step, 1700000000.0 + step);
      if (step == 2) through_step_2 = test::read_bytes(first);
    }
  }
  TensorBoardWriter resumed(scratch.path(), 2);
  EXPECT_EQ(test::read_bytes(first), through_step_2);
  EXPECT_GT(resumed.file().filename().string(), first.filename().string());
}

}  // namespace
}  // namespace upcycle::train
