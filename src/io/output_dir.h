// Atomic output directories: everything a command writes goes into a hidden staging directory next
// to the destination, and appears under the final name only when commit() has fsynced every file and
// renamed the directory into place. An exception, a failed write or a full disk leaves the
// destination untouched (absent, or the previous version when overwriting) and removes the staging dir.
#pragma once

#include <filesystem>
#include <string>

#include "core/error.h"

namespace upcycle {

enum class Overwrite { kRefuse, kReplace };

class StagedDir {
 public:
  // Checks up front that `destination` may be written: refuses an existing destination unless
  // Overwrite::kReplace ("<dir> already exists; pass --force to replace it"), and reports an
  // unwritable or missing parent. Creates the staging directory.
  StagedDir(std::filesystem::path destination, Overwrite overwrite);
  StagedDir(const StagedDir&) = delete;
  StagedDir& operator=(const StagedDir&) = delete;
  ~StagedDir();  // removes the staging directory unless committed

  const std::filesystem::path& path() const { return staging_; }  // write files here
  const std::filesystem::path& destination() const { return destination_; }
  // Runs `work(path())`; an Error it throws that names a file inside the staging directory is
  // re-thrown naming the same file under the destination, the path the user asked for.
  template <typename Work>
  void write(Work&& work) {
    try {
      work(staging_);
    } catch (const Error& e) {
      throw Error(e.what(), public_path(e.file()));
    }
  }
  // fsyncs every regular file in the staging dir and the dir itself, then renames it to the
  // destination (replacing an existing one when allowed) and fsyncs the parent.
  void commit();

 private:
  std::string public_path(const std::string& file) const;
  std::filesystem::path destination_;
  std::filesystem::path staging_;
  Overwrite overwrite_;
  bool committed_ = false;
};

}  // namespace upcycle
