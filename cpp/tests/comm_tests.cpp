// comm_tests.cpp — ZmqRingCommunicator across real processes and sockets. For 2, 3 and 4 forked
// ranks, over ipc and over tcp (127.0.0.1), every collective on 1, 7 and 1,048,579 elements is
// checked against a plain reference that each rank computes from the deterministic inputs of all
// ranks; each rank also reports a hash of its result, and the parent checks that the ranks agree
// bit for bit (and that ipc and tcp give the same bits). Then the failure paths: a stuck or dead
// peer (ERR_COLLECTIVE_TIMEOUT within the timeout), nobody listening or the wrong group
// (ERR_COMM_CONNECT), ranks that disagree on the collective or its size (ERR_COMM_PROTOCOL); and
// strangers at a CURVE ring's port, whose failed handshakes are counted by address.
// Prints one line per check and "N passed, N failed"; exits non-zero on any failure.
#include <arpa/inet.h>   // inet_pton
#include <netinet/in.h>  // sockaddr_in
#include <sys/socket.h>  // socket, bind, getsockname, connect
#include <unistd.h>      // close, write

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "../common/error.h"  // Error
#include "ring_harness.h"     // run_group, join, Transport

using namespace ring_harness;
using paratrain::Error;
using paratrain::ZmqRingCommunicator;
using paratrain::RingCurveKeys;
using Clock = std::chrono::steady_clock;

static int passed = 0, failed = 0;
static void print_check(bool ok, const std::string& name, const std::string& detail) {
  (ok ? passed : failed)++;
  std::printf("%s %-52s %s\n", ok ? "PASS" : "FAIL", name.c_str(), detail.c_str());
}

// Element i of rank r's input to check `salt`: a float in [−1, 1) on a 2⁻²³ grid, from a hash.
static uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
static float input(uint64_t salt, int r, size_t i) {
  const uint64_t h = mix(mix(salt * 1000003 + r) ^ i);
  return static_cast<float>(static_cast<int64_t>(h >> 40) - (1 << 23)) / static_cast<float>(1 << 23);
}
static double input_double(uint64_t salt, int r, size_t i) {  // carries bits a float would lose
  return input(salt, r, i) + std::ldexp(static_cast<double>(input(salt + 77, r, i)), -27);
}

template <typename T>
static uint64_t hash_bits(const T* data, size_t n) {  // FNV-1a over the bytes
  uint64_t h = 1469598103934665603ull;
  auto* bytes = reinterpret_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n * sizeof(T); i++) h = (h ^ bytes[i]) * 1099511628211ull;
  return h;
}

// What a child reports: "check <name> <rank> <ok> <same> <hash> <detail>"; same = the ranks' hashes must agree.
struct Reporter {
  int fd, rank;
  void operator()(const std::string& name, bool ok, bool same, uint64_t hash, const std::string& detail) const {
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash));
    write_line(fd, "check\t" + name + "\t" + std::to_string(rank) + "\t" + (ok ? "1" : "0") + "\t" +
                       (same ? "1" : "0") + "\t" + hex + "\t" + detail);
  }
};
static std::string fmt(const char* f, double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, x);
  return buf;
}

// Runs one check; a throw is a failure with the error's code and message.
template <typename Fn>
static void guarded(const Reporter& report, const std::string& name, Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    report(name, false, false, 0, e.code() + ": " + e.what());
  }
}

// Every collective on n elements, on one rank of k.
static void check_collectives(ZmqRingCommunicator& comm, const std::string& tag, size_t n, const Reporter& report) {
  const int k = comm.size(), me = comm.rank();
  const std::string at = " n=" + std::to_string(n);

  guarded(report, tag + "all_reduce_sum<float>" + at, [&] {
    std::vector<float> x(n), again(n);
    for (size_t i = 0; i < n; i++) x[i] = again[i] = input(1, me, i);
    comm.all_reduce_sum(x.data(), n);
    comm.all_reduce_sum(again.data(), n);  // the same call again: the same bits
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
      double sum = 0, magnitude = 0;
      for (int q = 0; q < k; q++) sum += input(1, q, i), magnitude += std::fabs(input(1, q, i));
      worst = std::max(worst, std::fabs(x[i] - sum) / std::max(magnitude, 1e-30));
    }
    const uint64_t h = hash_bits(x.data(), n);
    report(tag + "all_reduce_sum<float>" + at, worst <= 1e-6 && h == hash_bits(again.data(), n), true, h,
           fmt("err/sum|x|=%.2e", worst));
  });

  guarded(report, tag + "all_reduce_sum<double>" + at, [&] {
    std::vector<double> x(n);
    for (size_t i = 0; i < n; i++) x[i] = input_double(2, me, i);
    comm.all_reduce_sum(x.data(), n);
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
      double sum = 0, magnitude = 0;
      for (int q = 0; q < k; q++) sum += input_double(2, q, i), magnitude += std::fabs(input_double(2, q, i));
      worst = std::max(worst, std::fabs(x[i] - sum) / std::max(magnitude, 1e-300));
    }
    report(tag + "all_reduce_sum<double>" + at, worst <= 1e-12, true, hash_bits(x.data(), n),
           fmt("err/sum|x|=%.2e", worst));
  });

  guarded(report, tag + "all_reduce_max" + at, [&] {
    std::vector<float> x(n);
    for (size_t i = 0; i < n; i++) x[i] = input(3, me, i);
    comm.all_reduce_max(x.data(), n);
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++) {
      float expect = input(3, 0, i);
      for (int q = 1; q < k; q++) expect = std::max(expect, input(3, q, i));
      wrong += x[i] != expect;
    }
    report(tag + "all_reduce_max" + at, wrong == 0, true, hash_bits(x.data(), n), std::to_string(wrong) + " wrong");
  });

  const bool in_place = n == 7;  // the caller's block already sits at rank·n of the output
  const std::string gather_name = tag + "all_gather" + (in_place ? " in place" : "") + at;
  guarded(report, gather_name, [&] {
    std::vector<float> mine(n), all(k * n, NAN);
    for (size_t i = 0; i < n; i++) mine[i] = all[me * n + i] = input(4, me, i);
    comm.all_gather(in_place ? all.data() + me * n : mine.data(), all.data(), n);
    size_t wrong = 0;
    for (int q = 0; q < k; q++)
      for (size_t i = 0; i < n; i++) wrong += all[q * n + i] != input(4, q, i);
    report(gather_name, wrong == 0, true, hash_bits(all.data(), k * n), std::to_string(wrong) + " wrong");
  });

  guarded(report, tag + "reduce_scatter_sum" + at, [&] {
    std::vector<float> all(k * n), block(n, NAN);
    for (size_t i = 0; i < k * n; i++) all[i] = input(5, me, i);
    comm.reduce_scatter_sum(all.data(), block.data(), n);
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
      double sum = 0, magnitude = 0;
      for (int q = 0; q < k; q++) sum += input(5, q, me * n + i), magnitude += std::fabs(input(5, q, me * n + i));
      worst = std::max(worst, std::fabs(block[i] - sum) / std::max(magnitude, 1e-30));
    }
    report(tag + "reduce_scatter_sum" + at, worst <= 1e-6, false, hash_bits(block.data(), n),
           fmt("err/sum|x|=%.2e", worst));
  });

  if (n == 7) {
    guarded(report, tag + "all_reduce_max propagates NaN" + at, [&] {
      std::vector<float> x(n, static_cast<float>(me));
      if (me == k - 1) x[3] = NAN;
      comm.all_reduce_max(x.data(), n);
      const bool ok = std::isnan(x[3]) && x[0] == k - 1 && x[6] == k - 1;
      report(tag + "all_reduce_max propagates NaN" + at, ok, true, hash_bits(x.data(), n), "x[3] = NaN on one rank");
    });
  }

  for (int root = 0; root < k; root++) {
    const std::string name = tag + "broadcast root=" + std::to_string(root) + at;
    guarded(report, name, [&] {
      std::vector<float> x(n);
      for (size_t i = 0; i < n; i++) x[i] = input(6 + root, me, i);  // only the root's values survive
      comm.broadcast(x.data(), n, root);
      size_t wrong = 0;
      for (size_t i = 0; i < n; i++) wrong += x[i] != input(6 + root, root, i);
      report(name, wrong == 0, true, hash_bits(x.data(), n), std::to_string(wrong) + " wrong");
    });
  }
}

// The last rank arrives 300 ms late: nobody may leave the barrier before it arrives.
static void check_barrier(ZmqRingCommunicator& comm, const std::string& tag, const Reporter& report) {
  guarded(report, tag + "barrier", [&] {
    const bool late = comm.rank() == comm.size() - 1;
    comm.barrier();
    if (late) std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const auto start = Clock::now();
    comm.barrier();
    const double waited = std::chrono::duration<double>(Clock::now() - start).count();
    report(tag + "barrier", late || waited >= 0.2, false, 0, fmt("rank 0 waited %.3f s for the late rank", waited));
  });
}

// Collects a group's reports: one PASS/FAIL per check name (every rank reported, all ok, and equal
// hashes where the result must be the same on every rank), one FAIL per crashed child. Returns
// each check's rank-0 hash.
static std::map<std::string, uint64_t> judge(const GroupResult& result, int k) {
  struct Seen {
    int count = 0;
    bool ok = true, same = false;
    std::vector<uint64_t> hashes;
    std::string detail;
  };
  std::vector<std::string> order;
  std::map<std::string, Seen> seen;
  for (const std::string& line : result.lines) {
    std::vector<std::string> f;
    for (size_t start = 0, end = 0; end != std::string::npos; start = end + 1)
      f.push_back(line.substr(start, (end = line.find('\t', start)) - start));
    if (f[0] != "check" || f.size() < 7) {
      print_check(false, "child: " + line, "");
      continue;
    }
    if (!seen.count(f[1])) order.push_back(f[1]);
    Seen& s = seen[f[1]];
    const bool ok = f[3] == "1";
    s.count++;
    s.same = f[4] == "1";
    s.hashes.push_back(std::stoull(f[5], nullptr, 16));
    if (s.ok && (!ok || f[2] == "0")) s.detail = (ok ? "" : "rank " + f[2] + ": ") + f[6];  // rank 0's, or a failure
    s.ok = s.ok && ok;
  }
  std::map<std::string, uint64_t> rank0_hash;
  for (const std::string& name : order) {
    Seen& s = seen[name];
    bool agree = true;
    for (uint64_t h : s.hashes) agree = agree && h == s.hashes[0];
    const bool ok = s.ok && s.count == k && (!s.same || agree);
    std::string detail = s.detail;
    if (s.count != k) detail += " (" + std::to_string(s.count) + " of " + std::to_string(k) + " ranks reported)";
    if (s.same) detail += agree ? ", bitwise identical on all ranks" : ", RANKS DIFFER";
    print_check(ok, name, detail);
    rank0_hash[name] = s.hashes[0];
  }
  for (const std::string& crash : result.crashes) print_check(false, "child process", crash);
  return rank0_hash;
}

// A tcp port on 127.0.0.1 that is bound but not listening: connecting to it is refused.
static int closed_port(int& fd) {
  fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

// Runs `fn` expecting it to throw `code` within max_s seconds; reports the outcome.
template <typename Fn>
static void expect_error(const Reporter& report, const std::string& name, const std::string& code, double max_s,
                         Fn fn) {
  const auto start = Clock::now();
  std::string got = "no error";
  try {
    fn();
  } catch (const Error& e) {
    got = e.code() + ": " + e.what();
  }
  const double took = std::chrono::duration<double>(Clock::now() - start).count();
  report(name, got.rfind(code + ":", 0) == 0 && took <= max_s, false, 0, fmt("after %.2f s — ", took) + got);
}

static void failure_checks(const std::string& dir, int& group) {
  const int timeout_ms = 500;
  const double in_time = 1.5;  // s: the timeout plus scheduling slack on a loaded 2-core machine

  for (const bool dead : {false, true}) {  // rank 1 joins, then stalls (sleeps) or dies (exits)
    const std::string name = std::string("timeout: peer ") + (dead ? "exits" : "stalls") + " after joining";
    const int g = group++;
    judge(run_group(2, [&](int rank, int fd) {
            Reporter report{fd, rank};
            auto comm = join(dir, g, Transport::Ipc, rank, 2, timeout_ms, "data-parallel");
            comm->barrier();  // both handshakes are complete, nothing is in flight
            if (rank == 1) {
              report(name, true, false, 0, "");
              if (dead) _exit(0);  // no destructor: the socket just vanishes
              std::this_thread::sleep_for(std::chrono::milliseconds(3 * timeout_ms));
              return;
            }
            std::vector<float> x(1000, 1.0f);
            expect_error(report, name, "ERR_COLLECTIVE_TIMEOUT", in_time,
                         [&] { comm->all_reduce_sum(x.data(), x.size()); });
          }, 30), 2);
  }

  const int g_nobody = group++;
  judge(run_group(1, [&](int rank, int fd) {
          Reporter report{fd, rank};
          ZmqRingCommunicator ipc(rank_file(dir, g_nobody, 0, ".ipc"), "", timeout_ms, "tensor-parallel");
          expect_error(report, "connect: nobody listens (ipc)", "ERR_COMM_CONNECT", in_time,
                       [&] { ipc.connect(0, 2, "ipc://" + rank_file(dir, g_nobody, 1, ".ipc")); });
          int fd_port = -1;
          const int port = closed_port(fd_port);
          ZmqRingCommunicator tcp("", "127.0.0.1", timeout_ms, "tensor-parallel");
          expect_error(report, "connect: nobody listens (tcp)", "ERR_COMM_CONNECT", in_time,
                       [&] { tcp.connect(0, 2, "tcp://127.0.0.1:" + std::to_string(port)); });
          close(fd_port);
        }, 30), 1);

  const int g_wrong = group++;  // each rank is handed the other group's name: the hellos disagree
  judge(run_group(2, [&](int rank, int fd) {
          expect_error(Reporter{fd, rank}, "connect: peer from another group", "ERR_COMM_CONNECT", in_time, [&] {
            join(dir, g_wrong, Transport::Tcp, rank, 2, timeout_ms, rank == 0 ? "tensor-parallel" : "data-parallel");
          });
        }, 30), 2);

  // CURVE: a rank holding another job's keys never gets a frame through; its handshake fails.
  const int g_keys = group++;
  const RingCurveKeys ours = make_curve_keys(), theirs = make_curve_keys();
  judge(run_group(2, [&](int rank, int fd) {
          expect_error(Reporter{fd, rank}, "connect: peer with another job's CURVE keys", "ERR_COMM_CONNECT", in_time,
                       [&] { join(dir, g_keys, Transport::TcpCurve, rank, 2, timeout_ms, "data-parallel",
                                  rank == 0 ? ours : theirs); });
        }, 30), 2);

  for (const bool other_op : {true, false}) {  // a different collective, or the same one with another size
    const std::string name =
        other_op ? "protocol: ranks call different collectives" : "protocol: ranks pass different sizes";
    const int g = group++;
    judge(run_group(2, [&](int rank, int fd) {
            Reporter report{fd, rank};
            auto comm = join(dir, g, Transport::Ipc, rank, 2, timeout_ms, "tensor-parallel");
            std::vector<float> x(24, 1.0f);
            expect_error(report, name, "ERR_COMM_PROTOCOL", in_time, [&] {
              if (rank == 0) comm->all_reduce_sum(x.data(), 10);
              else if (other_op) comm->all_gather(x.data(), x.data() + 12, 5);
              else comm->all_reduce_sum(x.data(), 12);
            });
            expect_error(report, name + ", then any call", "ERR_COMM_PROTOCOL", 0.1, [&] { comm->barrier(); });
          }, 30), 2);
  }
}

// A raw TCP connection from 127.0.0.<from> (all of 127/8 is this host) to 127.0.0.1:port that
// writes `bytes` (nothing when empty) and closes.
static bool raw_connection(int from, int port, const std::string& bytes) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in local{}, to{};
  local.sin_family = to.sin_family = AF_INET;
  inet_pton(AF_INET, ("127.0.0." + std::to_string(from)).c_str(), &local.sin_addr);
  inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  to.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) == 0 &&
            connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0;
  if (ok && !bytes.empty()) ok = write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let the listener read it before the close
  close(fd);
  return ok;
}

// Strangers at a CURVE ring's TCP port: a zmq peer without CURVE, raw bytes that are not ZMTP, a
// connection that says nothing; each failed handshake is counted under its peer's address, and
// past kRefusedAddresses addresses the rest go under "other addresses".
static void refused_handshake_checks(int& group) {
  group++;
  judge(run_group(1, [&](int rank, int fd) {
          Reporter report{fd, rank};
          ZmqRingCommunicator comm("", "127.0.0.1", 2000, "data-parallel", make_curve_keys());
          const std::string endpoint = comm.endpoints().tcp;
          const int port = std::atoi(endpoint.substr(endpoint.rfind(':') + 1).c_str());
          void* ctx = zmq_ctx_new();
          void* push = zmq_socket(ctx, ZMQ_PUSH);
          int zero = 0;
          zmq_setsockopt(push, ZMQ_LINGER, &zero, sizeof zero);
          zmq_connect(push, endpoint.c_str());
          zmq_send(push, "hello", 5, ZMQ_DONTWAIT);
          bool raw_ok = raw_connection(2, port, "GET / HTTP/1.0\r\n\r\n") && raw_connection(3, port, "");
          std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the zmq peer retries meanwhile
          zmq_close(push);
          zmq_ctx_term(ctx);
          // The monitor thread counts as the events come: wait for them (bounded) on a loaded machine.
          std::map<std::string, uint64_t> by_address;
          const auto taken = [](std::map<std::string, uint64_t>& into) {
            uint64_t n = 0;
            for (const auto& r : ZmqRingCommunicator::take_refused_handshakes()) {
              into[r.address] += r.count;
              n += r.count;
            }
            return n;
          };
          uint64_t seen_total = 0;
          for (const auto until = Clock::now() + std::chrono::seconds(5); seen_total < 4 && Clock::now() < until;) {
            seen_total += taken(by_address);
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
          }
          std::string seen;
          for (const auto& [address, count] : by_address) seen += address + "×" + std::to_string(count) + " ";
          // The zmq peer comes from 127.0.0.1 and retries; the raw ones from .2 and .3. An address
          // is "unknown" only if the connection closed before the monitor thread read it.
          const uint64_t named = by_address["127.0.0.1"] + by_address["127.0.0.2"] + by_address["127.0.0.3"];
          const uint64_t total = named + by_address["unknown"];
          report("refused handshakes: counted by peer address",
                 raw_ok && total >= 3 && named >= 1 && by_address.size() <= 4 && comm.endpoints().tcp == endpoint, false,
                 0, seen);
          report("refused handshakes: a take clears them", ZmqRingCommunicator::take_refused_handshakes().empty(),
                 false, 0, "");

          const int strangers = static_cast<int>(ZmqRingCommunicator::kRefusedAddresses) + 16;
          for (int i = 0; i < strangers; i++) raw_ok = raw_connection(10 + i, port, "not zmtp") && raw_ok;
          std::this_thread::sleep_for(std::chrono::milliseconds(300));
          // One take holds at most kRefusedAddresses addresses + "other addresses"; later takes (if
          // the events came late) start afresh.
          const auto flood = ZmqRingCommunicator::take_refused_handshakes();
          std::map<std::string, uint64_t> later;
          uint64_t counted = 0, other = 0;
          for (const auto& r : flood) {
            counted += r.count;
            if (r.address == "other addresses") other = r.count;
          }
          for (const auto until = Clock::now() + std::chrono::seconds(5);
               counted < static_cast<uint64_t>(strangers) && Clock::now() < until;) {
            counted += taken(later);
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
          }
          report("refused handshakes: at most " + std::to_string(ZmqRingCommunicator::kRefusedAddresses) +
                     " addresses, the rest counted together",
                 raw_ok && flood.size() <= ZmqRingCommunicator::kRefusedAddresses + 1 &&
                     counted == static_cast<uint64_t>(strangers) && (other >= 1 || flood.size() < 64),
                 false, 0,
                 std::to_string(flood.size()) + " entries in the first take, " + std::to_string(counted) +
                     " refused, " + std::to_string(other) + " as other addresses");
        }, 30), 1);
}

// size 1: no sockets, every collective is the identity or a copy.
static void single_rank_check(const std::string& dir, int& group) {
  const int g = group++;
  judge(run_group(1, [&](int rank, int fd) {
          ZmqRingCommunicator comm(rank_file(dir, g, 0, ".ipc"), "", 500, "solo");
          comm.connect(0, 1, "");
          std::vector<float> x = {1.5f, -2.0f, 3.25f}, y(3);
          std::vector<double> d = {0.1, 0.2};
          comm.all_reduce_sum(x.data(), 3);
          comm.all_reduce_sum(d.data(), 2);
          comm.all_reduce_max(x.data(), 3);
          comm.broadcast(x.data(), 3, 0);
          comm.barrier();
          comm.all_gather(x.data(), y.data(), 3);
          bool ok = y == x && d[0] == 0.1 && d[1] == 0.2 && x[2] == 3.25f;
          comm.reduce_scatter_sum(x.data(), y.data(), 3);
          ok = ok && y == x && comm.rank() == 0 && comm.size() == 1;
          Reporter{fd, rank}("size 1: every collective is the identity or a copy", ok, false, 0, "");
        }, 30), 1);
}

int main() {
  const std::string dir = make_dir("comm-test");
  const std::vector<size_t> sizes = {1, 7, 1048579};  // fewer elements than ranks; ragged segments; 2+ chunks
  int group = 0;
  std::map<std::string, uint64_t> ipc_hash;
  const RingCurveKeys curve = make_curve_keys();
  for (const Transport t : {Transport::Ipc, Transport::Tcp, Transport::TcpCurve}) {
    for (int k = 2; k <= 4; k++) {
      const std::string tag = std::string(transport_name(t)) + " k=" + std::to_string(k) + " ";
      const int g = group++;
      auto hashes = judge(run_group(k, [&](int rank, int fd) {
                            auto comm = join(dir, g, t, rank, k, 10000, "test", curve);
                            const Reporter report{fd, rank};
                            for (size_t n : sizes) check_collectives(*comm, tag, n, report);
                            check_barrier(*comm, tag, report);
                          }, 120), k);
      // The reduction order is fixed by the ring, not the transport: ipc, tcp and tcp+curve agree bit for bit.
      for (size_t n : sizes) {
        const std::string key = "all_reduce_sum<float> n=" + std::to_string(n);
        if (t == Transport::Ipc) ipc_hash[std::to_string(k) + key] = hashes[tag + key];
        else
          print_check(hashes.count(tag + key) && ipc_hash[std::to_string(k) + key] == hashes[tag + key],
                      "k=" + std::to_string(k) + " " + key + ": " + transport_name(t) + " bits == ipc bits", "");
      }
    }
  }
  failure_checks(dir, group);
  refused_handshake_checks(group);
  single_rank_check(dir, group);
  remove_dir(dir, group);
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
