// The launcher-independent half of process_group.h: the single-process group and the choice of group.
#include "dist/process_group.h"

#include "dist/launcher.h"
#include "dist/mpi_process_group.h"

namespace upcycle::dist {

ProcessGroup& single_process_group() {
  static SingleProcessGroup group;
  return group;
}

std::unique_ptr<ProcessGroup> open_process_group() {
  const LauncherInfo launcher = launcher_from_environment();
  if (!launcher.wants_mpi()) return std::make_unique<SingleProcessGroup>();
  return make_mpi_process_group(launcher);
}

}  // namespace upcycle::dist
