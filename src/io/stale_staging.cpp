// Removal of staging directories left by killed writers (see stale_staging.h).
#include "io/stale_staging.h"

#include <charconv>
#include <system_error>

#include "core/units.h"
#include "core/writer_liveness.h"

namespace upcycle {
namespace fs = std::filesystem;

namespace {

uint64_t tree_bytes(const fs::path& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code size_ec;
    if (it->is_regular_file(size_ec)) total += it->file_size(size_ec);
  }
  return total;
}

}  // namespace

long staging_owner_pid(const std::string& sibling_name, const std::string& destination_name) {
  for (const char* tag : {".tmp-", ".old-"}) {
    std::string prefix = "." + destination_name + tag;
    if (sibling_name.size() <= prefix.size() || sibling_name.compare(0, prefix.size(), prefix) != 0) continue;
    const char* begin = sibling_name.data() + prefix.size();
    const char* end = sibling_name.data() + sibling_name.size();
    long pid = 0;
    auto [pid_end, ec] = std::from_chars(begin, end, pid);
    if (ec != std::errc() || pid_end == begin || pid <= 0 || pid_end == end || *pid_end != '-') continue;
    long serial = 0;
    auto [serial_end, ec2] = std::from_chars(pid_end + 1, end, serial);
    if (ec2 != std::errc() || serial_end != end || serial_end == pid_end + 1) continue;
    return pid;
  }
  return -1;
}

StaleStaging remove_stale_staging(const fs::path& destination) {
  StaleStaging result;
  const std::string name = destination.filename().string();
  std::error_code ec;
  for (fs::directory_iterator it(destination.parent_path(), ec), end; !ec && it != end; it.increment(ec)) {
    long pid = staging_owner_pid(it->path().filename().string(), name);
    if (pid < 0 || !it->is_directory()) continue;
    if (writer_may_be_alive(pid)) {
      result.warnings.push_back(it->path().string() + " (" + format_bytes(tree_bytes(it->path())) +
                                ") is the staging directory of process " + std::to_string(pid) +
                                ", which may still be writing this output; left in place");
      continue;
    }
    std::error_code remove_ec;
    fs::remove_all(it->path(), remove_ec);
    if (remove_ec) {
      result.warnings.push_back("cannot remove " + it->path().string() + ", left by a killed writer: " +
                                remove_ec.message());
    } else {
      result.removed.push_back(it->path());
    }
  }
  return result;
}

}  // namespace upcycle
