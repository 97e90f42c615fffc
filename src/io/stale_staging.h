// Garbage left by killed writers: StagedDir writes into `.NAME.tmp-PID-N` beside the destination and
// moves a replaced output aside as `.NAME.old-PID-N`. A SIGKILL (or power loss) leaves those behind,
// and for a 70B conversion that is hundreds of GB nobody sees. Before a new write to NAME starts, the
// siblings of dead writers are removed; those of a writer that may still be running are named in a
// warning with their size and left alone.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace upcycle {

struct StaleStaging {
  std::vector<std::filesystem::path> removed;
  std::vector<std::string> warnings;  // "…/.out.tmp-123-4 (1.2 GB) belongs to a running process …"
};

// Scans destination's parent for staging siblings of destination. A writer is dead when its PID no
// longer exists, or when that PID now runs another program than this one (the PID was reused).
// Same-host semantics: on a filesystem shared between machines a PID says nothing, so run one
// writer per output there.
StaleStaging remove_stale_staging(const std::filesystem::path& destination);

// Parses ".NAME.tmp-PID-N" / ".NAME.old-PID-N" for the given NAME; returns the PID or -1.
long staging_owner_pid(const std::string& sibling_name, const std::string& destination_name);

}  // namespace upcycle
