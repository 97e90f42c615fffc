// Run directory preparation and the run record (see run_dir.h).
#include "train/run_dir.h"

#include <unistd.h>

#include <system_error>

#include "core/error.h"
#include "core/file_util.h"

namespace upcycle::train {
namespace fs = std::filesystem;

namespace {

bool is_run_dir(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_regular_file(dir / "config.json", ec)) return false;
  try {
    const Json j = Json::parse(read_text_file(dir / "config.json", "run record"));
    return j.is_object() && j.value("format", "") == kRunFormat;
  } catch (const std::exception&) {
    return false;
  }
}

// What a fresh start leaves when it is killed before its run record is committed: an empty
// checkpoints/ and at most the record's temporary file (core/file_util: ".config.json.tmp.PID"). That
// directory holds no run: neither --resume nor --force could take it, so the same command starts in it
// as in an empty one (found by the kill soak, tests/soak/kill_soak.py).
bool is_unrecorded_start(const fs::path& dir) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name == "checkpoints" && fs::is_directory(entry.path(), ec) && fs::is_empty(entry.path(), ec)) continue;
    if (name.rfind(".config.json.tmp.", 0) == 0) continue;
    return false;
  }
  return !ec;
}

}  // namespace

void prepare_fresh_run_dir(const RunPaths& run, StartOver start_over) {
  std::error_code ec;
  const fs::path& dir = run.root;
  if (fs::exists(fs::symlink_status(dir, ec))) {
    if (!fs::is_directory(dir, ec)) throw Error("--out exists and is not a directory", dir.string());
    if (!fs::is_empty(dir, ec)) {
      if (!is_unrecorded_start(dir)) {
        if (start_over == StartOver::kNo)
          throw Error("run directory is not empty: pass --resume to continue its run or --force to start over",
                      dir.string());
        if (!is_run_dir(dir))
          throw Error("--force refuses to empty a directory that is not a training run (no run config.json)",
                      dir.string());
      }
      for (const auto& entry : fs::directory_iterator(dir)) {
        fs::remove_all(entry.path(), ec);
        if (ec) throw Error("cannot remove the previous run's " + entry.path().filename().string() + ": " + ec.message(),
                            entry.path().string());
      }
    }
  } else {
    const fs::path parent = fs::absolute(dir).parent_path();
    if (!fs::is_directory(parent, ec)) throw Error("--out's parent directory does not exist", parent.string());
    fs::create_directory(dir, ec);
    if (ec) throw Error("cannot create the run directory: " + ec.message(), dir.string());
  }
  fs::create_directory(run.checkpoints(), ec);
  if (ec) throw Error("cannot create the checkpoints directory: " + ec.message(), run.checkpoints().string());
}

Json read_run_record(const fs::path& run_dir) {
  const fs::path file = RunPaths{run_dir}.config();
  std::error_code ec;
  if (!fs::is_regular_file(file, ec))
    throw Error("not a training run directory (no config.json): nothing to --resume", run_dir.string());
  Json j;
  try {
    j = Json::parse(read_text_file(file, "run record"));
  } catch (const Json::exception& e) {
    throw Error(std::string("run record is not valid JSON: ") + e.what(), file.string());
  }
  const bool format_ok = j.is_object() && j.contains("format") && j["format"].is_string() && j["format"] == kRunFormat;
  if (!format_ok || !j.contains("options") || !j["options"].is_object())
    throw Error("not a training run record (format is not \"" + std::string(kRunFormat) + "\")", file.string());
  return j;
}

void write_json_atomically(const fs::path& file, const Json& json) {
  write_text_file_atomically(file, "run record", json.dump(2) + "\n");
}

}  // namespace upcycle::train
