// Hosts for the multi-host test, made on this machine: each "host" is a network namespace with its own
// address, joined to the others by a veth pair into a bridge in the root namespace, which holds the
// launcher's address. Addresses are in 10.18.X.0/24 (X free on this machine), reachable only between
// these namespaces. Open MPI reaches a host through an agent script (`ip netns exec NS sh -c …`, in place
// of ssh) and a hostfile naming the hosts' addresses; each launch is logged to agent.log.
// Names carry the test's pid (netns upcycle-PID-hN, bridge ucbPID, veth ucvPIDhN); the destructor removes
// everything made, and the constructor first removes what tests of dead pids left behind (a test killed
// before its destructor ran). Needs root (CI runs as root); setup failures are reported in error().
#pragma once

#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "support/test_support.h"

namespace upcycle::test {

class NetnsHosts {
 public:
  explicit NetnsHosts(int hosts) : tag_(std::to_string(::getpid())) {
    remove_leftovers();
    if (!pick_subnet()) return;
    if (!run("ip link add " + bridge() + " type bridge")) return;
    bridge_made_ = true;
    if (!run("ip addr add " + address(0) + "/24 dev " + bridge()) || !run("ip link set " + bridge() + " up")) return;
    for (int h = 1; h <= hosts; ++h) {
      const std::string ns = netns(h), veth = "ucv" + tag_ + "h" + std::to_string(h);
      if (!run("ip netns add " + ns)) return;
      netns_made_.push_back(ns);
      if (!run("ip link add " + veth + " type veth peer name eth0 netns " + ns) ||
          !run("ip link set " + veth + " master " + bridge() + " up") ||
          !run("ip -n " + ns + " addr add " + address(h) + "/24 dev eth0") || !run("ip -n " + ns + " link set eth0 up") ||
          !run("ip -n " + ns + " link set lo up"))
        return;
      veths_.push_back(veth);
    }
    write_launch_files(hosts);
  }
  ~NetnsHosts() {
    for (const auto& ns : netns_made_) run("ip netns del " + ns);  // takes its end of the veth pair along
    if (bridge_made_) run("ip link del " + bridge());
  }
  NetnsHosts(const NetnsHosts&) = delete;
  NetnsHosts& operator=(const NetnsHosts&) = delete;

  // Empty when every host is up; else the failed command and its output.
  const std::string& error() const { return error_; }
  // mpirun's options for one rank per host over TCP between the hosts: the hostfile, the agent (mpirun
  // starts every daemon itself, and the daemons stay attached to the agent: daemonized, one start in
  // some 20 of our loop lost a daemon and left mpirun waiting for it forever), TCP alone (the namespaces share
  // /dev/shm, so Open MPI's shared-memory transport would otherwise join them), the ob1 messaging layer
  // (not UCX) and this subnet for both the launch daemons and the data.
  std::vector<std::string> mpirun_args() const {
    return {"--hostfile", (files_ / "hosts").string(), "--mca", "plm_rsh_agent", (files_ / "agent").string(),
            "--mca", "plm_rsh_no_tree_spawn", "1", "--leave-session-attached", "--mca", "pml", "ob1", "--mca", "btl", "tcp,self",
            "--mca", "btl_tcp_if_include", subnet(), "--mca", "oob_tcp_if_include", subnet()};
  }
  std::string address(int host) const { return prefix_ + std::to_string(host + 1); }  // 0: the bridge
  // The lines the agent logged: "HOST NETNS" per daemon it started.
  std::string agent_log() const { return read_bytes(files_ / "agent.log"); }
  // Bytes through host h's link (both directions), from the root namespace's end of its veth pair.
  uint64_t link_bytes(int host) const {
    uint64_t total = 0;
    for (const char* dir : {"rx_bytes", "tx_bytes"}) {
      std::ifstream in("/sys/class/net/" + veths_.at(size_t(host - 1)) + "/statistics/" + dir);
      uint64_t n = 0;
      in >> n;
      total += n;
    }
    return total;
  }

 private:
  std::string bridge() const { return "ucb" + tag_; }
  std::string netns(int host) const { return "upcycle-" + tag_ + "-h" + std::to_string(host); }
  std::string subnet() const { return prefix_ + "0/24"; }

  // Runs a shell command; false (and error_ set) when it fails.
  bool run(const std::string& command) {
    FILE* p = ::popen((command + " 2>&1").c_str(), "r");
    std::string out;
    char buf[256];
    while (p && ::fgets(buf, sizeof buf, p)) out += buf;
    const int status = p ? ::pclose(p) : -1;
    if (status == 0) return true;
    if (error_.empty()) error_ = "`" + command + "` failed: " + out;
    return false;
  }
  std::string output_of(const std::string& command) {
    FILE* p = ::popen((command + " 2>/dev/null").c_str(), "r");
    std::string out;
    char buf[256];
    while (p && ::fgets(buf, sizeof buf, p)) out += buf;
    if (p) ::pclose(p);
    return out;
  }

  // 10.18.X.0/24 with X unused by any address on this machine (tests running side by side), at most 250 tries.
  bool pick_subnet() {
    const std::string used = output_of("ip -4 -o addr show");
    for (int i = 0; i < 250; ++i) {
      prefix_ = "10.18." + std::to_string((::getpid() + i) % 250 + 1) + ".";
      if (used.find(" " + prefix_) == std::string::npos) return true;
    }
    error_ = "no free 10.18.X.0/24 subnet";
    return false;
  }

  // Namespaces and bridges of this test whose pid is gone (bounded: one pass over each list).
  void remove_leftovers() {
    const auto dead = [](const std::string& pid) { return ::kill(pid_t(std::stol(pid)), 0) != 0 && errno == ESRCH; };
    std::istringstream netns_list(output_of("ip netns list"));
    const std::regex ns_name(R"(upcycle-(\d+)-h\d+)"), bridge_name(R"(\d+: ucb(\d+)[:@])");
    std::smatch m;
    for (std::string line; std::getline(netns_list, line);)
      if (std::regex_search(line, m, ns_name) && m.position(0) == 0 && dead(m[1])) run("ip netns del " + m[0].str());
    std::istringstream links(output_of("ip -o link show type bridge"));
    for (std::string line; std::getline(links, line);)
      if (std::regex_search(line, m, bridge_name) && dead(m[1])) run("ip link del ucb" + m[1].str());
    error_.clear();
  }

  void write_launch_files(int hosts) {
    std::string hostfile, cases;
    for (int h = 1; h <= hosts; ++h) {
      hostfile += address(h) + " slots=1\n";
      const std::filesystem::path tmp = files_ / ("tmp-h" + std::to_string(h));
      std::filesystem::create_directory(tmp);
      cases += "  " + address(h) + ") ns=" + netns(h) + " tmp=" + tmp.string() + " ;;\n";
    }
    write_bytes(files_ / "hosts", hostfile);
    // Open MPI calls the agent as it would ssh: AGENT HOST COMMAND…, the command a string for a shell.
    // Each host gets its own TMPDIR, as real hosts have their own /tmp: the hosts share this machine's
    // name, so Open MPI's daemons would otherwise share one session directory (/tmp/ompi.NAME.UID).
    write_bytes(files_ / "agent", "#!/bin/sh\nhost=$1; shift\ncase $host in\n" + cases +
                                      "  *) echo \"agent: unknown host $host\" >&2; exit 1 ;;\nesac\n"
                                      "echo \"$host $ns\" >> '" + (files_ / "agent.log").string() +
                                      "'\nexport TMPDIR=\"$tmp\"\nexec ip netns exec \"$ns\" /bin/sh -c \"$*\"\n");
    std::filesystem::permissions(files_ / "agent", std::filesystem::perms::owner_all);
  }

  std::string tag_, prefix_, error_;
  std::vector<std::string> netns_made_, veths_;
  bool bridge_made_ = false;
  ScratchDir files_;
};

}  // namespace upcycle::test
