// comm_bench.cpp — all-reduce bandwidth of ZmqRingCommunicator across forked ranks on this
// machine, over ipc, tcp (127.0.0.1) and tcp with CURVE (a multi-node job's rings), for message sizes 1 KiB … 256 MiB (×4 per row), next to
// the machine's memcpy bandwidth. Bus bandwidth = 2·(k−1)/k · bytes / time, the bytes each rank
// moves through its link (NCCL's definition), so figures for different k compare directly.
// Each cell is the median over iterations (after a warm-up) of the slowest rank's time.
//
//   paratrain_comm_bench [--max-bytes 256M] [--ranks 2,4]      (scripts/bench-collectives.sh runs it)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "ring_harness.h"  // run_group, join, Transport

using namespace ring_harness;
using Clock = std::chrono::steady_clock;

static double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// "64M", "4K", "1048576" → bytes
static size_t parse_bytes(const char* text) {
  char* end = nullptr;
  size_t v = std::strtoull(text, &end, 10);
  if (*end == 'K' || *end == 'k') v <<= 10;
  if (*end == 'M' || *end == 'm') v <<= 20;
  if (*end == 'G' || *end == 'g') v <<= 30;
  return v;
}

static std::string size_label(size_t bytes) {
  if (bytes >= (1u << 20)) return std::to_string(bytes >> 20) + " MiB";
  return std::to_string(bytes >> 10) + " KiB";
}

// Bytes copied per second by one large memcpy, best of 5.
static double memcpy_gbps(size_t bytes) {
  std::vector<char> src(bytes, 1), dst(bytes, 0);
  double best = 1e30;
  for (int i = 0; i < 5; i++) {
    const auto start = Clock::now();
    std::memcpy(dst.data(), src.data(), bytes);
    best = std::min(best, seconds_since(start));
  }
  if (dst[bytes / 2] != 1) std::printf("memcpy check failed\n");
  return bytes / best / 1e9;
}

// Rank `rank` of k: for each size, a warm-up then `iters` timed all-reduces, each between barriers;
// the slowest rank's time counts (all_reduce_max). Rank 0 reports "<bytes>\t<median seconds>".
static void bench_rank(const std::string& dir, int group, Transport t, int rank, int k,
                       const std::vector<size_t>& sizes, int fd, const paratrain::RingCurveKeys& curve) {
  auto comm = join(dir, group, t, rank, k, 120000, "bench", curve);
  std::vector<float> data(sizes.back() / sizeof(float), 0.0f);
  for (size_t bytes : sizes) {
    const size_t n = bytes / sizeof(float);
    const int iters = bytes <= (1u << 20) ? 50 : bytes <= (16u << 20) ? 15 : 5;
    std::vector<double> times;
    for (int i = -1; i < iters; i++) {  // i = −1: warm-up
      comm->barrier();
      const auto start = Clock::now();
      comm->all_reduce_sum(data.data(), n);
      float took = static_cast<float>(seconds_since(start));
      comm->all_reduce_max(&took, 1);
      if (i >= 0) times.push_back(took);
    }
    std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
    if (rank == 0) write_line(fd, std::to_string(bytes) + "\t" + std::to_string(times[times.size() / 2]));
  }
}

static int usage(const char* self) {
  std::fprintf(stderr, "usage: %s [--max-bytes 256M] [--ranks 2,4]\n", self);
  return 2;
}

int main(int argc, char** argv) {
  size_t max_bytes = 256u << 20;
  std::vector<int> rank_counts = {2, 4};
  for (int i = 1; i < argc; i += 2) {
    if (i + 1 >= argc) return usage(argv[0]);
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--max-bytes") {
      max_bytes = parse_bytes(value.c_str());
    } else if (flag == "--ranks") {
      rank_counts.clear();
      for (size_t start = 0, end = 0; end != std::string::npos; start = end + 1)
        rank_counts.push_back(std::atoi(value.substr(start, (end = value.find(',', start)) - start).c_str()));
    } else {
      return usage(argv[0]);
    }
  }
  for (int k : rank_counts)
    if (k < 2 || k > 8) return usage(argv[0]);
  std::vector<size_t> sizes;
  for (size_t b = 1024; b <= max_bytes; b *= 4) sizes.push_back(b);
  if (sizes.empty()) sizes.push_back(1024);

  const long cores = sysconf(_SC_NPROCESSORS_ONLN);
  std::printf("memcpy: %.1f GB/s (one 256 MiB memcpy, best of 5; bytes copied per second)\n", memcpy_gbps(256u << 20));
  std::printf("all-reduce bus bandwidth, GB/s = 2·(k−1)/k · bytes / median time; %ld cores", cores);
  for (int k : rank_counts)
    if (k > cores) std::printf("; %d ranks oversubscribe them (each rank has a compute and a zmq I/O thread)", k);
  std::printf("\n\n");

  const std::string dir = make_dir("comm-bench");
  const paratrain::RingCurveKeys curve = make_curve_keys();
  int group = 0;
  std::vector<std::string> columns;
  std::map<std::string, std::map<size_t, double>> cells;  // column → bytes → GB/s
  for (int k : rank_counts) {
    for (const Transport t : {Transport::Ipc, Transport::Tcp, Transport::TcpCurve}) {
      const std::string column = std::string(transport_name(t)) + " " + std::to_string(k) + " ranks GB/s";
      columns.push_back(column);
      const int g = group++;
      std::fprintf(stderr, "running %s %d ranks …\n", transport_name(t), k);
      const auto result = run_group(k, [&](int rank, int fd) { bench_rank(dir, g, t, rank, k, sizes, fd, curve); }, 1200);
      for (const std::string& crash : result.crashes) std::fprintf(stderr, "%s: %s\n", column.c_str(), crash.c_str());
      for (const std::string& line : result.lines) {
        size_t bytes = 0;
        double seconds = 0;
        if (std::sscanf(line.c_str(), "%zu\t%lf", &bytes, &seconds) != 2 || seconds <= 0) {
          std::fprintf(stderr, "%s: %s\n", column.c_str(), line.c_str());  // an error from a rank
          continue;
        }
        cells[column][bytes] = 2.0 * (k - 1) / k * bytes / seconds / 1e9;
      }
    }
  }
  remove_dir(dir, group);

  std::printf("| size |");
  for (const auto& c : columns) std::printf(" %s |", c.c_str());
  std::printf("\n|---|");
  for (size_t i = 0; i < columns.size(); i++) std::printf("---|");
  std::printf("\n");
  for (size_t bytes : sizes) {
    std::printf("| %s |", size_label(bytes).c_str());
    for (const auto& c : columns) {
      if (cells[c].count(bytes)) std::printf(" %.3f |", cells[c][bytes]);
      else std::printf(" — |");
    }
    std::printf("\n");
  }
  return 0;
}
