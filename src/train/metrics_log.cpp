// RUN_DIR/metrics.jsonl (see metrics_log.h). Kept lines are copied byte for byte, never re-serialised,
// so a resumed log is a prefix of the interrupted one. A last line without its newline is the mark of
// a write cut short (crash, full disk): it is dropped on resume like any record past the step.
#include "train/metrics_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/file_util.h"

namespace upcycle::train {
namespace {

namespace fs = std::filesystem;

std::string write_failure(int err) {
  if (err == ENOSPC) return "cannot write metrics log: no space left on device";
  if (err == EFBIG) return "cannot write metrics log: file too large for this filesystem or limit";
  return "cannot write metrics log: " + errno_text(err);
}

// The lines of `text` whose record has "step" ≤ keep_through_step, each with its newline.
std::string kept_lines(const std::string& text, int64_t keep_through_step, const fs::path& file, int64_t& count) {
  std::string kept;
  size_t begin = 0;
  for (size_t line_no = 1; begin < text.size(); ++line_no) {
    const size_t end = text.find('\n', begin);
    if (end == std::string::npos) break;  // unterminated tail: a write cut short
    const std::string_view line(text.data() + begin, end - begin);
    const Json record = parse_json(line, "metrics log line " + std::to_string(line_no), file.string());
    auto step = record.is_object() ? record.find("step") : record.end();
    if (!record.is_object() || step == record.end() || !step->is_number_integer())
      throw Error("metrics log line " + std::to_string(line_no) + " has no integer \"step\"", file.string());
    if (step->get<int64_t>() <= keep_through_step) {
      kept.append(text, begin, end - begin + 1);
      ++count;
    }
    begin = end + 1;
  }
  return kept;
}


}  // namespace

MetricsLog::MetricsLog(const fs::path& file, int64_t keep_through_step) : file_(file) {
  UPCYCLE_CHECK(keep_through_step >= -1, "keep_through_step must be -1 (fresh run) or a step");
  struct stat st {};
  const bool exists = ::stat(file.c_str(), &st) == 0;
  if (exists && S_ISDIR(st.st_mode)) throw Error("metrics log is a directory", file.string());
  if (keep_through_step < 0) {
    if (exists && st.st_size > 0)
      throw Error("metrics log already holds records of an earlier run (resume that run, or start in a new run "
                  "directory)",
                  file.string());
  } else if (exists) {
    const std::string text = read_text_file(file, "metrics log");
    const std::string kept = kept_lines(text, keep_through_step, file, kept_records_);
    if (kept.size() != text.size()) write_text_file_atomically(file, "metrics log", kept);
  }
  out_ = std::fopen(file.c_str(), "ae");  // append; close-on-exec
  if (out_ == nullptr) throw Error("cannot open metrics log: " + errno_text(errno), file.string());
  // Unbuffered: each record goes out in one write, so a failed write leaves no stale bytes in a
  // buffer that a later flush could splice into the middle of the file.
  std::setvbuf(out_, nullptr, _IONBF, 0);
}

MetricsLog::~MetricsLog() {
  if (out_ != nullptr) std::fclose(out_);
}

void MetricsLog::write(const Json& record) {
  auto step = record.find("step");
  UPCYCLE_CHECK(record.is_object() && step != record.end() && step->is_number_integer(),
                "metrics records carry an integer \"step\"");
  // NaN/Inf losses are written as null (JSON has no spelling for them).
  const std::string line = record.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
  errno = 0;
  if (std::fwrite(line.data(), 1, line.size(), out_) != line.size()) {
    const int err = errno != 0 ? errno : EIO;
    std::clearerr(out_);
    throw Error(write_failure(err), file_.string());
  }
}

void MetricsLog::sync() {
  if (::fsync(::fileno(out_)) != 0) throw Error("fsync failed: " + errno_text(errno), file_.string());
}

}  // namespace upcycle::train
