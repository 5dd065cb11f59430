// zmq_ring.h — ZmqRingCommunicator: the CPU data plane. One process per rank; every collective
// runs around a ring over libzmq PUSH/PULL sockets (ipc:// within a node, tcp:// across nodes).
// A rank only ever sends to (rank+1)%size and receives from (rank−1)%size, so ZeroMQ's per-pipe
// FIFO order gives both ends the same message order. Algorithms, framing, timeouts and error codes:
// docs/collectives.md.
#pragma once
#include <cstddef>  // size_t
#include <cstdint>  // uint64_t
#include <string>
#include <thread>
#include <vector>

#include "communicator.h"  // Communicator

namespace paratrain {

// Where this rank's receive socket listens, as full zmq endpoints ("ipc:///tmp/x", "tcp://10.0.0.5:41873");
// "" = not bound on that transport.
struct RingEndpoints {
  std::string ipc, tcp;
};

// CURVE keys of a job's rings, Z85 text (40 characters each), derived from the job's secret on the
// TypeScript side (src/control/auth.ts). Empty = the ring is unauthenticated. Every receive socket
// is a CURVE server with the server pair; every send socket a client that must know the server's
// public key to complete the handshake, which only holders of the job's secret can.
struct RingCurveKeys {
  std::string server_public, server_secret, client_public, client_secret;
  bool on() const { return !server_public.empty(); }
};

// Connections to a ring's receive socket that never completed their handshake (no CURVE, another
// job's key, not ZMTP at all, or dropped half way), counted by ring name and peer address.
struct RefusedHandshakes {
  std::string ring, address;
  uint64_t count;
};

// Used by one thread at a time (which thread may change). Throws paratrain::Error with code
// ERR_COLLECTIVE_TIMEOUT, ERR_COMM_CONNECT, ERR_COMM_PROTOCOL, ERR_COMM_BIND or ERR_ARGUMENT; after
// a failed collective every later call throws (the group must be rebuilt). Never hangs: every wait
// is bounded by timeout_ms. All-reduce results are bitwise identical on every rank.
class ZmqRingCommunicator final : public Communicator {
 public:
  // Creates its own zmq context and a receive socket (PULL) and binds it: to "ipc://<ipc_path>" when
  // ipc_path is non-empty, and to "tcp://<tcp_host>:*" (an ephemeral port, read back with
  // ZMQ_LAST_ENDPOINT) when tcp_host is non-empty. timeout_ms bounds every wait (connect handshake,
  // each receive, each send). `name` ("tensor-parallel", "data-parallel") goes into error messages.
  // With `curve` on, a peer that cannot complete the CURVE handshake never delivers a frame.
  ZmqRingCommunicator(const std::string& ipc_path, const std::string& tcp_host, int timeout_ms,
                      const std::string& name, const RingCurveKeys& curve = {});
  ~ZmqRingCommunicator() override;  // linger 0: never hangs on close; removes its ipc socket file
  ZmqRingCommunicator(const ZmqRingCommunicator&) = delete;
  ZmqRingCommunicator& operator=(const ZmqRingCommunicator&) = delete;

  RingEndpoints endpoints() const { return endpoints_; }

  // The refused handshakes of every ring in this process since the last call (a monitor thread per
  // receive socket counts them as they happen, whatever the ring's owner is doing). At most
  // kRefusedAddresses addresses are told apart; the rest are counted as "other addresses".
  static constexpr size_t kRefusedAddresses = 64;
  static std::vector<RefusedHandshakes> take_refused_handshakes();

  // Joins the ring: this rank's index, the group size, and the endpoint of rank (rank+1)%size.
  // Connects a PUSH socket to it and handshakes (hello to next, hello from prev, within timeout_ms),
  // so a wrong or dead peer is an ERR_COMM_CONNECT here rather than a hang later.
  // size == 1: every collective is the identity (or a copy), and the receive socket is closed (a
  // listener nothing would ever read).
  void connect(int rank, int size, const std::string& next_endpoint);

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void all_reduce_sum(float* data, size_t n) override;
  void all_reduce_sum(double* data, size_t n) override;
  void all_reduce_max(float* data, size_t n) override;
  void all_gather(const float* send, float* recv, size_t n_per_rank) override;          // recv: size()·n
  void reduce_scatter_sum(const float* send, float* recv, size_t n_per_rank) override;  // send: size()·n
  void broadcast(float* data, size_t n, int root) override;
  void barrier() override;

 private:
  // What a message carries, checked on receipt: one value per collective and element type, so a
  // peer that runs a different collective is caught at its first message.
  enum class Op : uint32_t { Hello = 1, AllReduceSumF32, AllReduceSumF64, AllReduceMaxF32, AllGather, ReduceScatter,
                             Broadcast, Barrier };
  static const char* op_name(uint32_t op);

  // The ring schedule over the segments seg_begin_/seg_len_ (docs/collectives.md): steps 0 … size−2
  // reduce-scatter `local` (segment `rank` ends in final_out), steps size−1 … 2·size−3 all-gather into `gather`.
  template <typename T, typename Combine>
  void ring(Op op, const T* local, T* final_out, T* gather, int first_step, int last_step, Combine combine);
  template <typename T, typename Combine>
  void all_reduce(Op op, T* data, size_t n, Combine combine);
  void check_ready(Op op);
  void split_slice(size_t at, size_t m);                     // all-reduce: the slice [at, at+m) in size parts
  void split_blocks(size_t block_len, size_t at, size_t m);  // [at, at+m) of each rank's block

  // Framing: a header frame (ZMQ_SNDMORE), then the payload frame. Sequence numbers count the
  // messages on each link (this→next, prev→this), so both ends of a link agree on them.
  void send_copy(Op op, const void* data, size_t bytes);
  void send_msg(Op op, void* msg /* zmq_msg_t*, sent and emptied */);
  void send_header(Op op, size_t bytes);
  void recv_msg(Op op, size_t bytes, void* msg /* zmq_msg_t*, initialised; filled with the payload */);
  void wait_readable(Op op);
  void handshake(const std::string& next_endpoint);
  // Marks the communicator broken and throws; during the handshake every failure is ERR_COMM_CONNECT.
  [[noreturn]] void fail(Op op, const char* code, const std::string& what);
  std::string where(Op op) const;  // "<name> all-reduce (rank r of n)"
  void close_all();
  void watch_handshakes();  // the monitor thread: reads recv_socket_'s events until the context ends

  void* ctx_ = nullptr;
  void* recv_socket_ = nullptr;  // PULL, bound; prev's PUSH connects to it
  void* monitor_ = nullptr;      // PAIR: recv_socket_'s connection events, read by monitor_thread_ only
  std::thread monitor_thread_;
  int tcp_port_ = 0;  // our TCP listener's port (0: none), set before the monitor thread starts
  void* send_socket_ = nullptr;  // PUSH, connected to next
  RingCurveKeys curve_;
  int timeout_ms_;
  std::string name_;
  std::string ipc_path_;  // the socket file to remove, "" when not bound on ipc
  RingEndpoints endpoints_;
  std::string next_endpoint_;  // for error messages
  int rank_ = 0, size_ = 1;
  bool connected_ = false, broken_ = false;
  std::vector<size_t> seg_begin_, seg_len_;  // the current ring's segments, one per rank
  uint64_t call_ = 0;  // collectives started, same count on every rank
  uint64_t sent_ = 0, received_ = 0;
};

}  // namespace paratrain
