// ring_harness.h — runs a group of ZmqRingCommunicator ranks as forked processes, for
// comm_tests.cpp and comm_bench.cpp. The parent never touches zmq (a zmq context must not cross a
// fork); each child makes its own communicator, finds its ring neighbour through a shared
// directory (deterministic ipc socket paths, or small files holding the tcp endpoints that the
// kernel picked), and reports back one line per result on a pipe.
#pragma once
#include <sys/stat.h>  // mkdir
#include <sys/wait.h>  // waitpid, WIFEXITED, ...
#include <unistd.h>    // fork, pipe, read, write, _exit, alarm, unlink, rmdir, rename
#include <zmq.h>     // zmq_curve_keypair

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../comm/zmq_ring.h"  // ZmqRingCommunicator

namespace ring_harness {

// TcpCurve: tcp with every connection CURVE-authenticated and encrypted (a multi-node job's rings).
enum class Transport { Ipc, Tcp, TcpCurve };
inline const char* transport_name(Transport t) {
  return t == Transport::Ipc ? "ipc" : t == Transport::Tcp ? "tcp" : "tcp+curve";
}

// A job's ring keys, made once before the ranks fork (they all need the same ones).
inline paratrain::RingCurveKeys make_curve_keys() {
  char server_public[41], server_secret[41], client_public[41], client_secret[41];
  zmq_curve_keypair(server_public, server_secret);
  zmq_curve_keypair(client_public, client_secret);
  return {server_public, server_secret, client_public, client_secret};
}

// A fresh directory for one run's sockets and endpoint files.
inline std::string make_dir(const std::string& tag) {
  const std::string dir = "/tmp/paratrain-" + tag + "-" + std::to_string(getpid());
  mkdir(dir.c_str(), 0700);
  return dir;
}
// Removes the files this harness puts in `dir` (groups 0 … groups−1, up to 8 ranks), then `dir`.
inline void remove_dir(const std::string& dir, int groups) {
  for (int g = 0; g < groups; g++)
    for (int r = 0; r < 8; r++)
      for (const char* ext : {".ipc", ".ep"})
        unlink((dir + "/g" + std::to_string(g) + "-r" + std::to_string(r) + ext).c_str());
  rmdir(dir.c_str());
}

inline std::string rank_file(const std::string& dir, int group, int rank, const char* ext) {
  return dir + "/g" + std::to_string(group) + "-r" + std::to_string(rank) + ext;
}

// Creates rank `rank`'s communicator for ring `group` (unique within dir) of k ranks and joins it.
inline std::unique_ptr<paratrain::ZmqRingCommunicator> join(const std::string& dir, int group, Transport t, int rank,
                                                            int k, int timeout_ms, const std::string& name,
                                                            const paratrain::RingCurveKeys& curve = {}) {
  const bool ipc = t == Transport::Ipc;
  auto comm = std::make_unique<paratrain::ZmqRingCommunicator>(ipc ? rank_file(dir, group, rank, ".ipc") : "",
                                                                ipc ? "" : "127.0.0.1", timeout_ms, name,
                                                                t == Transport::TcpCurve ? curve : paratrain::RingCurveKeys{});
  const int next = (rank + 1) % k;
  std::string next_endpoint = "ipc://" + rank_file(dir, group, next, ".ipc");
  if (!ipc) {  // publish our ephemeral port (write, then rename: readers never see half a file)
    const std::string mine = rank_file(dir, group, rank, ".ep");
    std::ofstream(mine + ".tmp") << comm->endpoints().tcp;
    std::rename((mine + ".tmp").c_str(), mine.c_str());
    next_endpoint.clear();
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (next_endpoint.empty() && std::chrono::steady_clock::now() < give_up) {
      std::ifstream(rank_file(dir, group, next, ".ep")) >> next_endpoint;
      if (next_endpoint.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  comm->connect(rank, k, next_endpoint);
  return comm;
}

// One line to the parent in one write(), so lines from several children never interleave.
inline void write_line(int fd, std::string line) {
  if (line.size() > 3000) line.resize(3000);  // below PIPE_BUF: the write is atomic
  line += '\n';
  if (write(fd, line.data(), line.size()) < 0) std::perror("write");
}

struct GroupResult {
  std::vector<std::string> lines;    // everything the children reported
  std::vector<std::string> crashes;  // "rank r exited with status s" for each child that did not exit 0
};

// Forks k children that run body(rank, fd) and exit; each is killed after alarm_s seconds, so a
// bug can fail the run but never hang it. Returns when all have exited.
inline GroupResult run_group(int k, const std::function<void(int rank, int fd)>& body, int alarm_s) {
  int fds[2];
  if (pipe(fds) != 0) std::perror("pipe");
  std::fflush(stdout);  // or the children would print the parent's buffered output again
  std::vector<pid_t> pids;
  for (int r = 0; r < k; r++) {
    const pid_t pid = fork();
    if (pid == 0) {
      close(fds[0]);
      alarm(alarm_s);
      int status = 0;
      try {
        body(r, fds[1]);
      } catch (const std::exception& e) {
        write_line(fds[1], std::string("uncaught\t") + e.what());
        status = 1;
      }
      _exit(status);
    }
    pids.push_back(pid);
  }
  close(fds[1]);
  GroupResult result;
  std::string text;
  char buf[4096];
  for (;;) {  // until every child has closed its end
    const ssize_t got = read(fds[0], buf, sizeof buf);
    if (got > 0)
      text.append(buf, got);
    else if (got == 0 || errno != EINTR)
      break;
  }
  close(fds[0]);
  for (size_t start = 0, end; (end = text.find('\n', start)) != std::string::npos; start = end + 1)
    result.lines.push_back(text.substr(start, end - start));
  for (int r = 0; r < k; r++) {
    int status = 0;
    waitpid(pids[r], &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) continue;
    result.crashes.push_back("rank " + std::to_string(r) +
                             (WIFSIGNALED(status) ? " was killed by signal " + std::to_string(WTERMSIG(status))
                                                  : " exited with status " + std::to_string(WEXITSTATUS(status))));
  }
  return result;
}

}  // namespace ring_harness
