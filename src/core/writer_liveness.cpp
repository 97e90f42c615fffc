// Liveness of a temp file's writer from its PID, through kill(pid, 0) and /proc (see writer_liveness.h).
#include "core/writer_liveness.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <string>

namespace upcycle {
namespace {

std::string program_of(long pid) {
  std::ifstream comm("/proc/" + (pid == 0 ? std::string("self") : std::to_string(pid)) + "/comm");
  std::string name;
  std::getline(comm, name);
  return name;
}

// A killed process stays a zombie until its parent reaps it: state Z (or X) in /proc/PID/stat.
bool is_zombie(long pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  size_t close = line.rfind(')');  // the command name may itself hold spaces and parentheses
  return close != std::string::npos && close + 2 < line.size() && (line[close + 2] == 'Z' || line[close + 2] == 'X');
}

}  // namespace

bool writer_may_be_alive(long pid) {
  if (pid == ::getpid()) return true;
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return false;
  if (is_zombie(pid)) return false;
  std::string theirs = program_of(pid);
  return theirs.empty() || theirs == program_of(0);  // unreadable /proc: assume alive
}

}  // namespace upcycle
