// Atomic output directories (see output_dir.h).
#include "io/output_dir.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <random>
#include <system_error>

#include "core/error.h"
#include "core/file_util.h"
#include "io/stale_staging.h"

namespace upcycle {
namespace fs = std::filesystem;

namespace {

fs::path unique_sibling(const fs::path& destination, const char* tag) {
  std::random_device rd;
  for (int attempt = 0; attempt < 1000; ++attempt) {
    fs::path candidate = destination.parent_path() /
                         ("." + destination.filename().string() + "." + tag + "-" + std::to_string(::getpid()) + "-" +
                          std::to_string(rd() % 1000000));
    std::error_code ec;
    if (!fs::exists(candidate, ec)) return candidate;
  }
  throw Error("cannot find a free temporary name next to the output", destination.string());
}

void fsync_tree(const fs::path& dir) {
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file() || entry.is_directory()) fsync_path(entry.path());
  }
  fsync_path(dir);
}

}  // namespace

StagedDir::StagedDir(fs::path destination, Overwrite overwrite) : overwrite_(overwrite) {
  if (destination.empty()) throw Error("output directory name is empty");
  destination_ = fs::absolute(destination).lexically_normal();
  if (destination_.filename().empty()) destination_ = destination_.parent_path();
  std::error_code ec;
  auto status = fs::symlink_status(destination_, ec);
  if (fs::exists(status)) {
    if (overwrite_ == Overwrite::kRefuse)
      throw Error("output already exists; pass --force to replace it", destination_.string());
    if (!fs::is_directory(fs::status(destination_, ec)))
      throw Error("output exists and is not a directory; refusing to replace it", destination_.string());
  }
  fs::path parent = destination_.parent_path();
  auto parent_status = fs::status(parent, ec);
  if (!fs::exists(parent_status)) throw Error("output's parent directory does not exist", parent.string());
  if (!fs::is_directory(parent_status)) throw Error("output's parent is not a directory", parent.string());
  // Killed writers leave their staging directories behind: clear the ones of dead processes first.
  for (const auto& warning : remove_stale_staging(destination_).warnings)
    std::fprintf(stderr, "upcycle: warning: %s\n", warning.c_str());
  staging_ = unique_sibling(destination_, "tmp");
  if (!fs::create_directory(staging_, ec))
    throw Error("cannot create output directory: " + ec.message(), parent.string());
}

StagedDir::~StagedDir() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(staging_, ec);
  }
}

std::string StagedDir::public_path(const std::string& file) const {
  const std::string staging = staging_.string();
  if (file.compare(0, staging.size(), staging) != 0) return file;
  return destination_.string() + file.substr(staging.size());
}

void StagedDir::commit() {
  UPCYCLE_CHECK(!committed_, "StagedDir committed twice");
  fsync_tree(staging_);
  std::error_code ec;
  fs::path old;
  if (fs::exists(fs::symlink_status(destination_, ec))) {
    if (overwrite_ == Overwrite::kRefuse)  // appeared while we were working
      throw Error("output appeared while writing; pass --force to replace it", destination_.string());
    old = unique_sibling(destination_, "old");
    fs::rename(destination_, old, ec);
    if (ec) throw Error("cannot move the previous output aside: " + ec.message(), destination_.string());
  }
  fs::rename(staging_, destination_, ec);
  if (ec) {
    if (!old.empty()) fs::rename(old, destination_);  // put the previous version back
    throw Error("cannot rename the finished output into place: " + ec.message(), destination_.string());
  }
  committed_ = true;
  fsync_path(destination_.parent_path());
  if (!old.empty()) fs::remove_all(old, ec);
}

}  // namespace upcycle
