// The set of event files in RUN_DIR/tensorboard/ (tensorboard_writer.h writes one per invocation):
// - names that sort in write order: both TensorBoard loaders read a run's files in name order (the
//   Rust data server's preemption and the Python loader's SessionLog purge both assume it), and a live
//   Python loader never goes back to a name sorting before the file it is reading;
// - trimming on resume: records past the resumed step are cut off the earlier files, as metrics.jsonl
//   drops its records, because TensorBoard's default loader (the Rust data server, 2.21) ignores the
//   SessionLog START that tells the Python loader to drop them.
// Only upcycle's own files (events.out.tfevents.*.upcycle[.N]) are trimmed; other writers' files are
// left alone. Non-goals: reading values back (the tests do that with TensorBoard itself).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace upcycle::train {

// "events.out.tfevents.<seconds>.<host>.<pid>.upcycle" with <seconds> = now_s, or raised past the
// seconds of the newest "events.out.tfevents.*" name in `dir` when the name would not sort after it
// (a resume within the same second from a pid that sorts lower, or a clock behind the earlier one's).
std::string next_event_file_name(const std::filesystem::path& dir, int64_t now_s, std::string_view host, int64_t pid);

// Whether `name` is an event file upcycle wrote (tensorboard_writer.h's naming, ".N" suffix included).
bool is_upcycle_event_file(std::string_view name);

// What the trim needs of an encoded tensorflow.Event: its step (field 2; 0 when absent, as in proto3)
// and whether it carries a summary (field 5); nothing when the bytes are not a well-formed message.
struct EventHeader {
  int64_t step = 0;
  bool summary = false;
};
std::optional<EventHeader> event_header(std::string_view payload);

// Cuts each upcycle event file in `dir` just before its first summary with step > keep_through_step
// (summary steps never decrease within a file, so that is every such point), or before its first
// unreadable record: a torn tail left by a crash, which TensorBoard would stop at anyway. truncate in
// place: the kept prefix stays byte for byte. Returns the number of files cut; Errors name the file.
int64_t trim_event_files(const std::filesystem::path& dir, int64_t keep_through_step);

}  // namespace upcycle::train
