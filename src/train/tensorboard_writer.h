// TensorBoard event files, written without TensorFlow: TFRecord framing (uint64 length, masked
// CRC-32C of the length, data, masked CRC-32C of the data; mask = ((crc >> 15) | (crc << 17)) +
// 0xa282ead8) around tensorflow.Event protobuf messages encoded by hand: the first record carries
// file_version "brain.Event:2", scalars are Summary.Value{tag, simple_value} (TensorBoard's scalars
// plugin reads them, migrating them to its v2 tensors itself). Resuming first cuts the earlier files'
// records past resume_step (tensorboard_files.h: what the default Rust loader needs). Every file then
// has a SessionLog START at step resume_step + 1, 0 when fresh (what the Python loaders act on: they
// keep earlier points with a step below the START's; the v2 one ignores a run's first START, hence one
// in the fresh run's file too). Scalar steps never decrease within a file.
// File name: events.out.tfevents.<unix seconds>.<hostname>.<pid>.upcycle in RUN_DIR/tensorboard/,
// sorting after the files already there (TensorBoard reads a run's files in name order).
// Non-goals: histograms, images, graph records.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string_view>

namespace upcycle::train {

uint32_t crc32c(const void* data, size_t n);
uint32_t masked_crc32c(const void* data, size_t n);

class TensorBoardWriter {
 public:
  // Creates `dir` if needed and a new event file in it: file_version, then SessionLog START.
  // resume_step ≥ 0 (a resume) first trims the earlier files' points past it; −1: a fresh run.
  TensorBoardWriter(const std::filesystem::path& dir, int64_t resume_step);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  void scalar(std::string_view tag, double value, int64_t step, double wall_time_s);
  void flush();  // fflush + fsync (at checkpoints)
  const std::filesystem::path& file() const { return file_; }

 private:
  void write_record(std::string_view data);  // one TFRecord; Error naming the file on failure

  std::filesystem::path file_;
  std::FILE* out_ = nullptr;
  int64_t last_step_ = 0;  // of the last scalar written
};

}  // namespace upcycle::train
