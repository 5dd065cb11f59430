// zmq_ring.cpp — ZmqRingCommunicator: ring collectives over libzmq PUSH/PULL sockets (C API).
// All-reduce = ring reduce-scatter + ring all-gather over `size` segments, streamed in chunks: a
// chunk reduced at step s is sent on at step s+1 as soon as it is reduced; big tensors go round in
// slices of a few MiB so memory in flight stays bounded. Each segment is summed
// in one fixed order and finished on one rank, then copied around, so every rank ends with the same
// bits, run after run. docs/collectives.md has the schedule, framing and error codes.
#include "zmq_ring.h"

#include <arpa/inet.h>   // inet_ntop
#include <netinet/in.h>  // sockaddr_in, sockaddr_in6
#include <sys/socket.h>  // getpeername
#include <unistd.h>      // unlink
#include <zmq.h>         // zmq_ctx_*, zmq_socket, zmq_bind/connect, zmq_send, zmq_msg_*, zmq_poll, zmq_socket_monitor

#include <algorithm>  // std::min
#include <cerrno>
#include <chrono>   // steady_clock: receive deadlines
#include <cstdlib>  // atoi
#include <cstring>  // memcpy, memmove
#include <map>
#include <mutex>
#include <new>      // std::bad_alloc
#include <utility>  // std::pair

#include "../common/error.h"  // Error

namespace paratrain {
namespace {

// Bytes per message. Large enough that zmq's per-message cost (a few µs) is noise, small enough
// that a rank forwards one chunk while the next is still arriving.
constexpr size_t kChunkBytes = 512 * 1024;
// A large collective runs as a series of rings over slices of at most kSliceBytes per segment. A
// ring's first step queues a copy of its whole segment at once; slicing bounds that to a few MiB
// per rank whatever the tensor (not a second copy of a model's gradients), and buffers stay warm.
constexpr size_t kSliceBytes = 4 * kChunkBytes;
constexpr uint32_t kMagic = 0x5054524e;  // "NRTP": a paratrain ring message

// The first frame of every message. `call` numbers the collectives (0 = the handshake) and `seq`
// the messages on this link; a peer that called another collective, or passed another size, is
// caught by op/call/bytes, a lost or duplicated message by seq.
struct Header {
  uint32_t magic, op;
  uint64_t call, seq, bytes;
};

// A zmq_msg_t that is always closed (closing after a successful send is a no-op).
struct Msg {
  zmq_msg_t m;
  Msg() { zmq_msg_init(&m); }
  explicit Msg(size_t bytes) {
    if (zmq_msg_init_size(&m, bytes) != 0) throw std::bad_alloc();
  }
  ~Msg() { zmq_msg_close(&m); }
  Msg(const Msg&) = delete;
  Msg& operator=(const Msg&) = delete;
  unsigned char* data() { return static_cast<unsigned char*>(zmq_msg_data(&m)); }
};

struct Sum {
  template <typename T>
  T operator()(T a, T b) const { return a + b; }
};
// Max that propagates NaN (an overflow check must see it whichever rank has it).
struct Max {
  float operator()(float a, float b) const { return (a > b || a != a) ? a : b; }
};

// out[i] = combine(local[i], in[i]) for n elements of T. `in` (received) and `out` may be message
// memory at any byte offset, so elements move through memcpy — plain (vector) loads and stores.
template <typename T, typename Combine>
void combine_into(void* out, const T* local, const void* in, size_t n, Combine combine) {
  auto* dst = static_cast<unsigned char*>(out);
  auto* src = static_cast<const unsigned char*>(in);
  for (size_t i = 0; i < n; i++) {
    T x;
    std::memcpy(&x, src + i * sizeof(T), sizeof(T));
    const T y = combine(local[i], x);
    std::memcpy(dst + i * sizeof(T), &y, sizeof(T));
  }
}

void set_int(void* socket, int option, int value) { zmq_setsockopt(socket, option, &value, sizeof value); }

// A CURVE option; false when libzmq refuses it (a key that is not 40 characters of Z85, or a libzmq
// built without CURVE).
bool set_key(void* socket, int option, const std::string& z85) {
  return zmq_setsockopt(socket, option, z85.c_str(), z85.size()) == 0;
}

// Refused handshakes of every ring in the process, by (ring, address), since the last take.
std::mutex refused_mutex;
std::map<std::pair<std::string, std::string>, uint64_t> refused_counts;

void note_refused(const std::string& ring, const std::string& address) {
  std::lock_guard<std::mutex> lock(refused_mutex);
  std::pair<std::string, std::string> key{ring, address};
  if (refused_counts.size() >= ZmqRingCommunicator::kRefusedAddresses && refused_counts.count(key) == 0)
    key.second = "other addresses";
  refused_counts[key]++;
}

// The IP of the peer on socket fd ("10.0.0.7", without the port: a peer that retries comes from
// new ports), read when the monitor thread hears that the connection was accepted; ipc peers are
// processes of this user on this host. The connection may be gone by then and the fd number reused
// by something else: a socket whose local port is not our listener's gives "unknown" rather than
// another peer's name.
std::string peer_address(int fd, int listening_port) {
  sockaddr_storage local{}, peer{};
  socklen_t local_len = sizeof local, peer_len = sizeof peer;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0 ||
      getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0 || local.ss_family != peer.ss_family)
    return "unknown";
  char text[INET6_ADDRSTRLEN] = "";
  if (peer.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&peer);
    if (ntohs(reinterpret_cast<const sockaddr_in*>(&local)->sin_port) != listening_port) return "unknown";
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    return text;
  }
  if (peer.ss_family == AF_INET6) {
    const auto* in = reinterpret_cast<const sockaddr_in6*>(&peer);
    if (ntohs(reinterpret_cast<const sockaddr_in6*>(&local)->sin6_port) != listening_port) return "unknown";
    inet_ntop(AF_INET6, &in->sin6_addr, text, sizeof text);
    return text;
  }
  return peer.ss_family == AF_UNIX ? "ipc (this host)" : "unknown";
}

std::string last_endpoint(void* socket) {
  char buf[1024];
  size_t len = sizeof buf;
  if (zmq_getsockopt(socket, ZMQ_LAST_ENDPOINT, buf, &len) != 0 || len == 0) return "";
  return std::string(buf, strnlen(buf, len));
}

}  // namespace

const char* ZmqRingCommunicator::op_name(uint32_t op) {
  switch (static_cast<Op>(op)) {
    case Op::Hello: return "handshake";
    case Op::AllReduceSumF32: return "all-reduce";
    case Op::AllReduceSumF64: return "all-reduce (double)";
    case Op::AllReduceMaxF32: return "all-reduce max";
    case Op::AllGather: return "all-gather";
    case Op::ReduceScatter: return "reduce-scatter";
    case Op::Broadcast: return "broadcast";
    case Op::Barrier: return "barrier";
  }
  return "unknown operation";
}

ZmqRingCommunicator::ZmqRingCommunicator(const std::string& ipc_path, const std::string& tcp_host, int timeout_ms,
                                         const std::string& name, const RingCurveKeys& curve)
    : curve_(curve), timeout_ms_(timeout_ms), name_(name) {
  if (timeout_ms <= 0) throw Error("ERR_ARGUMENT", name + " communicator: timeout_ms must be positive");
  try {
    ctx_ = zmq_ctx_new();
    if (!ctx_) throw Error("ERR_COMM_BIND", name + " communicator: zmq_ctx_new failed: " + zmq_strerror(errno));
    zmq_ctx_set(ctx_, ZMQ_BLOCKY, 0);  // sockets default to linger 0, so terminating never waits
    recv_socket_ = zmq_socket(ctx_, ZMQ_PULL);
    if (!recv_socket_) throw Error("ERR_COMM_BIND", name + " communicator: zmq_socket failed: " + zmq_strerror(errno));
    set_int(recv_socket_, ZMQ_LINGER, 0);
    // A bounded queue per connection: our own sender never blocks (its SNDHWM is unlimited, so past
    // this it waits in the sender's memory, behind TCP flow control), and a peer that pushes frames
    // nobody reads holds at most this many of ours.
    set_int(recv_socket_, ZMQ_RCVHWM, 64);
    // A connection that has not completed its handshake in 10 s is dropped (libzmq's default is
    // 30 s): our peers finish it in milliseconds, idle strangers would each hold a descriptor.
    set_int(recv_socket_, ZMQ_HANDSHAKE_IVL, std::min(timeout_ms, 10000));
    // No frame of ours is bigger than a chunk (CURVE adds a few dozen bytes of box and nonce to it on
    // the wire, where libzmq checks): a peer that sends a bigger one is dropped before it is buffered.
    const int64_t max_frame = kChunkBytes + 1024;
    zmq_setsockopt(recv_socket_, ZMQ_MAXMSGSIZE, &max_frame, sizeof max_frame);
    if (curve_.on()) {
      set_int(recv_socket_, ZMQ_CURVE_SERVER, 1);
      if (!set_key(recv_socket_, ZMQ_CURVE_SECRETKEY, curve_.server_secret))
        throw Error("ERR_COMM_BIND", name + " communicator: libzmq refused the CURVE server key: " + zmq_strerror(errno));
    }
    auto bind = [&](const std::string& endpoint) {
      if (zmq_bind(recv_socket_, endpoint.c_str()) != 0)
        throw Error("ERR_COMM_BIND", name + " communicator: cannot listen on " + endpoint + ": " + zmq_strerror(errno));
      return last_endpoint(recv_socket_);
    };
    if (!ipc_path.empty()) {
      endpoints_.ipc = bind("ipc://" + ipc_path);
      ipc_path_ = ipc_path;
    }
    if (!tcp_host.empty()) {
      endpoints_.tcp = bind("tcp://" + tcp_host + ":*");
      tcp_port_ = std::atoi(endpoints_.tcp.substr(endpoints_.tcp.rfind(':') + 1).c_str());
    }
    // Connection events, read at once by a thread of ours so that the I/O thread never waits on them
    // (an unlimited inproc queue), to count the handshakes that fail. Started after the binds, so
    // tcp_port_ is set before the thread reads it; a peer that connects in between goes unseen.
    const std::string monitor_endpoint = "inproc://ring-monitor";
    monitor_ = zmq_socket(ctx_, ZMQ_PAIR);
    if (!monitor_ || zmq_socket_monitor(recv_socket_, monitor_endpoint.c_str(),
                                        ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                                            ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                            ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0)
      throw Error("ERR_COMM_BIND", name + " communicator: cannot monitor its socket: " + zmq_strerror(errno));
    set_int(monitor_, ZMQ_LINGER, 0);
    set_int(monitor_, ZMQ_RCVHWM, 0);
    if (zmq_connect(monitor_, monitor_endpoint.c_str()) != 0)
      throw Error("ERR_COMM_BIND", name + " communicator: cannot read its socket's events: " + zmq_strerror(errno));
    monitor_thread_ = std::thread([this] { watch_handshakes(); });
  } catch (...) {
    close_all();
    throw;
  }
}

ZmqRingCommunicator::~ZmqRingCommunicator() { close_all(); }

void ZmqRingCommunicator::close_all() {
  if (send_socket_) zmq_close(send_socket_);
  if (recv_socket_) zmq_close(recv_socket_);
  send_socket_ = recv_socket_ = nullptr;
  if (monitor_ && !monitor_thread_.joinable()) zmq_close(monitor_);  // else the thread closes it
  // Terminating the context ends the monitor thread's wait (ETERM); it closes its socket, which
  // lets the termination finish.
  if (ctx_)
    while (zmq_ctx_term(ctx_) != 0 && errno == EINTR) {
    }
  if (monitor_thread_.joinable()) monitor_thread_.join();
  monitor_ = nullptr;
  ctx_ = nullptr;
  if (!ipc_path_.empty()) unlink(ipc_path_.c_str());
  ipc_path_.clear();
}

// Events are [u16 event, u32 value] then the endpoint (ours, not the peer's). ACCEPTED and
// DISCONNECTED carry the connection's fd, which is how a refusal finds its peer's address; the
// handshake events carry none. A connection was refused when a HANDSHAKE_FAILED event comes just
// before its DISCONNECTED (the same call in the one I/O thread), or when no handshake at all
// succeeded while it was open: bytes that are not ZMTP end it with no handshake event. (One that
// fails silently while a real peer completes its handshake is missed.)
void ZmqRingCommunicator::watch_handshakes() {
  struct Open {
    std::string address;
    uint64_t succeeded_before;  // handshakes that had succeeded when it was accepted
  };
  std::map<int, Open> open;  // accepted and not yet disconnected
  uint64_t succeeded = 0;
  bool failed = false;
  for (;;) {
    Msg event;
    if (zmq_msg_recv(&event.m, monitor_, 0) < 0) {
      if (errno == EINTR) continue;
      break;  // ETERM: the communicator is closing
    }
    uint16_t id = 0;
    uint32_t value = 0;
    if (zmq_msg_size(&event.m) >= 6) {
      std::memcpy(&id, event.data(), sizeof id);
      std::memcpy(&value, event.data() + 2, sizeof value);
    }
    while (zmq_msg_more(&event.m))
      if (zmq_msg_recv(&event.m, monitor_, 0) < 0 && errno != EINTR) break;
    const int fd = static_cast<int>(value);
    switch (id) {
      case ZMQ_EVENT_ACCEPTED:
        if (open.size() < 4096) open[fd] = {peer_address(fd, tcp_port_), succeeded};
        break;
      case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        succeeded++;
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
      case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
      case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        failed = true;
        break;
      case ZMQ_EVENT_DISCONNECTED: {
        const auto it = open.find(fd);
        if (failed || (it != open.end() && it->second.succeeded_before == succeeded))
          note_refused(name_, it != open.end() ? it->second.address : "unknown");
        failed = false;
        if (it != open.end()) open.erase(it);
        break;
      }
      default:
        break;
    }
  }
  zmq_close(monitor_);
}

std::vector<RefusedHandshakes> ZmqRingCommunicator::take_refused_handshakes() {
  std::lock_guard<std::mutex> lock(refused_mutex);
  std::vector<RefusedHandshakes> out;
  for (const auto& [key, count] : refused_counts) out.push_back({key.first, key.second, count});
  refused_counts.clear();
  return out;
}

std::string ZmqRingCommunicator::where(Op op) const {
  return name_ + " " + op_name(static_cast<uint32_t>(op)) + " (rank " + std::to_string(rank_) + " of " +
         std::to_string(size_) + ")";
}

void ZmqRingCommunicator::fail(Op op, const char* code, const std::string& what) {
  broken_ = true;
  throw Error(op == Op::Hello ? "ERR_COMM_CONNECT" : code, where(op) + ": " + what);
}

void ZmqRingCommunicator::connect(int rank, int size, const std::string& next_endpoint) {
  if (connected_ || send_socket_) throw Error("ERR_ARGUMENT", name_ + " communicator: connect() was already called");
  if (size < 1 || rank < 0 || rank >= size)
    throw Error("ERR_ARGUMENT", name_ + " communicator: rank " + std::to_string(rank) + " of " +
                                    std::to_string(size) + " is not a valid position in a ring");
  rank_ = rank;
  size_ = size;
  seg_begin_.assign(size, 0);
  seg_len_.assign(size, 0);
  if (size > 1) {
    handshake(next_endpoint);
  } else if (recv_socket_) {
    zmq_close(recv_socket_);
    recv_socket_ = nullptr;
    if (!ipc_path_.empty()) unlink(ipc_path_.c_str());
    ipc_path_.clear();
  }
  connected_ = true;
}

// Hello payload: this rank, the group size and the group name, so a ring wired to the wrong
// process (another group, another job, a stale rank) fails here by name.
void ZmqRingCommunicator::handshake(const std::string& next_endpoint) {
  const int next = (rank_ + 1) % size_, prev = (rank_ + size_ - 1) % size_;
  next_endpoint_ = next_endpoint;
  if (next_endpoint.empty()) fail(Op::Hello, "ERR_COMM_CONNECT", "no endpoint given for rank " + std::to_string(next));
  send_socket_ = zmq_socket(ctx_, ZMQ_PUSH);
  if (!send_socket_) fail(Op::Hello, "ERR_COMM_CONNECT", std::string("zmq_socket failed: ") + zmq_strerror(errno));
  set_int(send_socket_, ZMQ_LINGER, 0);
  set_int(send_socket_, ZMQ_SNDHWM, 0);            // unlimited: sends never wait on the queue…
  set_int(send_socket_, ZMQ_SNDTIMEO, timeout_ms_);  // …only on a missing peer, and that wait is bounded
  set_int(send_socket_, ZMQ_IMMEDIATE, 1);  // queue nothing for a peer that is not connected (yet, or any more)
  if (curve_.on() && !(set_key(send_socket_, ZMQ_CURVE_SERVERKEY, curve_.server_public) &&
                       set_key(send_socket_, ZMQ_CURVE_PUBLICKEY, curve_.client_public) &&
                       set_key(send_socket_, ZMQ_CURVE_SECRETKEY, curve_.client_secret)))
    fail(Op::Hello, "ERR_COMM_CONNECT", std::string("libzmq refused the CURVE client keys: ") + zmq_strerror(errno));
  if (zmq_connect(send_socket_, next_endpoint.c_str()) != 0)
    fail(Op::Hello, "ERR_COMM_CONNECT",
         "cannot connect to rank " + std::to_string(next) + " at '" + next_endpoint + "': " + zmq_strerror(errno));

  std::string hello(8, '\0');
  const int32_t me[2] = {rank_, size_};
  std::memcpy(&hello[0], me, sizeof me);
  hello += name_;
  send_copy(Op::Hello, hello.data(), hello.size());

  Msg in;
  recv_msg(Op::Hello, SIZE_MAX, &in.m);
  const size_t len = zmq_msg_size(&in.m);
  int32_t them[2] = {-1, -1};
  if (len >= sizeof them) std::memcpy(them, in.data(), sizeof them);
  const std::string their_name =
      len >= sizeof them ? std::string(reinterpret_cast<char*>(in.data()) + sizeof them, len - sizeof them) : "";
  if (them[0] != prev || them[1] != size_ || their_name != name_)
    fail(Op::Hello, "ERR_COMM_CONNECT",
         "expected a hello from rank " + std::to_string(prev) + " of " + std::to_string(size_) + " (" + name_ +
             "), got one from rank " + std::to_string(them[0]) + " of " + std::to_string(them[1]) + " (" +
             their_name + ") — the ring endpoints are wired wrongly");
}

void ZmqRingCommunicator::send_header(Op op, size_t bytes) {
  const Header h{kMagic, static_cast<uint32_t>(op), call_, sent_, bytes};
  while (zmq_send(send_socket_, &h, sizeof h, ZMQ_SNDMORE) < 0) {
    if (errno == EINTR) continue;
    const int next = (rank_ + 1) % size_;
    if (errno == EAGAIN)
      fail(op, "ERR_COLLECTIVE_TIMEOUT",
           "could not send to rank " + std::to_string(next) + " within " + std::to_string(timeout_ms_) + " ms — " +
               (op == Op::Hello ? "nobody listens at " + next_endpoint_ : std::string("the peer died or is stuck")));
    fail(op, "ERR_COMM_PROTOCOL", "send to rank " + std::to_string(next) + " failed: " + zmq_strerror(errno));
  }
}

void ZmqRingCommunicator::send_copy(Op op, const void* data, size_t bytes) {
  Msg out(bytes);
  if (bytes) std::memcpy(out.data(), data, bytes);
  send_msg(op, &out.m);
}

void ZmqRingCommunicator::send_msg(Op op, void* msg) {
  auto* m = static_cast<zmq_msg_t*>(msg);
  send_header(op, zmq_msg_size(m));
  // The header is queued, so the peer is attached and the queue unbounded: this does not block.
  while (zmq_msg_send(m, send_socket_, 0) < 0) {
    if (errno == EINTR) continue;
    fail(op, "ERR_COMM_PROTOCOL", std::string("send failed: ") + zmq_strerror(errno));
  }
  sent_++;
}

void ZmqRingCommunicator::wait_readable(Op op) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + std::chrono::milliseconds(timeout_ms_);
  zmq_pollitem_t item{recv_socket_, 0, ZMQ_POLLIN, 0};
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    const int rc = zmq_poll(&item, 1, left > 0 ? static_cast<long>(left) : 0);
    if (rc > 0) return;
    if (rc < 0 && errno != EINTR) fail(op, "ERR_COMM_PROTOCOL", std::string("zmq_poll failed: ") + zmq_strerror(errno));
    if (rc == 0 && left <= 0) {
      const int prev = (rank_ + size_ - 1) % size_;
      fail(op, "ERR_COLLECTIVE_TIMEOUT",
           "no data from rank " + std::to_string(prev) + " within " + std::to_string(timeout_ms_) + " ms — " +
               (op == Op::Hello ? "it never joined (wrong endpoint, or it is not running)"
                                : "the peer died or is stuck"));
    }
  }
}

// Receives the next message from prev into `msg` and checks its header against what this rank
// expects: the same collective, the same call number, the next sequence number, `bytes` of payload
// (SIZE_MAX: any).
void ZmqRingCommunicator::recv_msg(Op op, size_t bytes, void* msg) {
  auto* payload = static_cast<zmq_msg_t*>(msg);
  const std::string from = "rank " + std::to_string((rank_ + size_ - 1) % size_);
  Msg head;
  for (;;) {
    wait_readable(op);
    if (zmq_msg_recv(&head.m, recv_socket_, ZMQ_DONTWAIT) >= 0) break;
    if (errno != EAGAIN && errno != EINTR)
      fail(op, "ERR_COMM_PROTOCOL", "receive from " + from + " failed: " + zmq_strerror(errno));
  }
  Header h{};
  if (zmq_msg_size(&head.m) == sizeof h) std::memcpy(&h, head.data(), sizeof h);
  if (h.magic != kMagic || !zmq_msg_more(&head.m))
    fail(op, "ERR_COMM_PROTOCOL", "a message that is not a paratrain ring message arrived from " + from);
  // A multi-part message arrives whole, so the payload is already here.
  if (zmq_msg_recv(payload, recv_socket_, ZMQ_DONTWAIT) < 0 || zmq_msg_more(payload))
    fail(op, "ERR_COMM_PROTOCOL", "a malformed message arrived from " + from);
  if (h.op != static_cast<uint32_t>(op) || h.call != call_)
    fail(op, "ERR_COMM_PROTOCOL",
         from + " is in " + op_name(h.op) + " #" + std::to_string(h.call) + " while this rank is in " +
             op_name(static_cast<uint32_t>(op)) + " #" + std::to_string(call_) +
             " — the ranks called collectives in different orders");
  if (bytes != SIZE_MAX && (h.bytes != bytes || zmq_msg_size(payload) != bytes))
    fail(op, "ERR_COMM_PROTOCOL",
         from + " sent " + std::to_string(h.bytes) + " bytes where this rank expected " + std::to_string(bytes) +
             " — the ranks passed different sizes");
  if (h.seq != received_)
    fail(op, "ERR_COMM_PROTOCOL",
         "message #" + std::to_string(h.seq) + " from " + from + " where #" + std::to_string(received_) +
             " was expected — messages were lost or duplicated");
  received_++;
}

void ZmqRingCommunicator::check_ready(Op op) {
  if (!connected_) throw Error("ERR_ARGUMENT", where(op) + ": called before connect()");
  if (broken_)
    throw Error("ERR_COMM_PROTOCOL", where(op) + ": an earlier collective failed; the group must be rebuilt");
  call_++;
}

// Segments of the slice [at, at+m) of one tensor: the first m % size get one extra element, so any m
// works (m < size leaves some segments empty; they send nothing).
void ZmqRingCommunicator::split_slice(size_t at, size_t m) {
  const size_t base = m / size_, extra = m % size_;
  for (int j = 0; j < size_; j++) {
    seg_begin_[j] = at + j * base + std::min<size_t>(j, extra);
    seg_len_[j] = base + (static_cast<size_t>(j) < extra);
  }
}
// Segments of the slice [at, at+m) of each of size blocks of block_len elements.
void ZmqRingCommunicator::split_blocks(size_t block_len, size_t at, size_t m) {
  for (int j = 0; j < size_; j++) {
    seg_begin_[j] = j * block_len + at;
    seg_len_[j] = m;
  }
}

// The ring schedule. At step g (0 ≤ g ≤ 2·size−3) this rank sends segment (rank−g−1) mod size and
// receives segment (rank−g−2) mod size, which is the one it sends at step g+1. Steps 0 … size−2
// reduce: segment j starts as rank j+1's contribution and gains one rank per step in ring order,
// ending complete on rank j at step size−2 (so reduce-scatter leaves rank r its own block r).
// Steps size−1 … 2·size−3 copy the finished segments around. Chunks go on as soon as they arrive.
// Segment j is [seg_begin_[j], seg_begin_[j] + seg_len_[j]) of local and gather; segment r's result
// goes to final_out[0 … seg_len_[r]).
template <typename T, typename Combine>
void ZmqRingCommunicator::ring(Op op, const T* local, T* final_out, T* gather, int first, int last,
                               Combine combine) {
  const int n = size_, r = rank_;
  const size_t chunk = kChunkBytes / sizeof(T);
  auto segment = [n](int j) { return ((j % n) + n) % n; };

  // Step `first` sends from what this rank holds: its contribution, or its finished block.
  const int j0 = segment(r - first - 1);
  const T* start = first < n - 1 ? local : gather;
  for (size_t b = seg_begin_[j0], end = b + seg_len_[j0]; b < end; b += chunk)
    send_copy(op, start + b, std::min(chunk, end - b) * sizeof(T));

  for (int g = first; g <= last; g++) {
    const int j = segment(r - g - 2);
    for (size_t b = seg_begin_[j], end = b + seg_len_[j]; b < end; b += chunk) {
      const size_t len = std::min(chunk, end - b), bytes = len * sizeof(T);
      Msg in;
      recv_msg(op, bytes, &in.m);
      if (g < n - 2) {  // a partial sum: add ours into the message itself and pass it on
        combine_into(in.data(), local + b, in.data(), len, combine);
        send_msg(op, &in.m);
      } else if (g == n - 2) {  // segment r is complete here
        T* dst = final_out + (b - seg_begin_[r]);
        combine_into(dst, local + b, in.data(), len, combine);
        if (g < last) send_copy(op, dst, bytes);
      } else {  // a finished chunk: keep it and pass the same message on
        std::memcpy(gather + b, in.data(), bytes);
        if (g < last) send_msg(op, &in.m);
      }
    }
  }
}

template <typename T, typename Combine>
void ZmqRingCommunicator::all_reduce(Op op, T* data, size_t n, Combine combine) {
  check_ready(op);
  if (size_ == 1) return;
  const size_t slice = size_ * (kSliceBytes / sizeof(T));
  for (size_t at = 0; at < n; at += slice) {
    split_slice(at, std::min(slice, n - at));
    ring(op, data, data + seg_begin_[rank_], data, 0, 2 * size_ - 3, combine);
  }
}

void ZmqRingCommunicator::all_reduce_sum(float* data, size_t n) { all_reduce(Op::AllReduceSumF32, data, n, Sum()); }
void ZmqRingCommunicator::all_reduce_sum(double* data, size_t n) { all_reduce(Op::AllReduceSumF64, data, n, Sum()); }
void ZmqRingCommunicator::all_reduce_max(float* data, size_t n) { all_reduce(Op::AllReduceMaxF32, data, n, Max()); }

void ZmqRingCommunicator::reduce_scatter_sum(const float* send, float* recv, size_t n_per_rank) {
  check_ready(Op::ReduceScatter);
  if (size_ == 1) {
    if (send != recv) std::memmove(recv, send, n_per_rank * sizeof(float));
    return;
  }
  const size_t slice = kSliceBytes / sizeof(float);
  for (size_t at = 0; at < n_per_rank; at += slice) {
    split_blocks(n_per_rank, at, std::min(slice, n_per_rank - at));
    ring(Op::ReduceScatter, send, recv + at, static_cast<float*>(nullptr), 0, size_ - 2, Sum());
  }
}

void ZmqRingCommunicator::all_gather(const float* send, float* recv, size_t n_per_rank) {
  check_ready(Op::AllGather);
  float* mine = recv + rank_ * n_per_rank;
  if (send != mine) std::memmove(mine, send, n_per_rank * sizeof(float));
  if (size_ == 1) return;
  const size_t slice = kSliceBytes / sizeof(float);
  for (size_t at = 0; at < n_per_rank; at += slice) {
    split_blocks(n_per_rank, at, std::min(slice, n_per_rank - at));
    ring(Op::AllGather, static_cast<const float*>(nullptr), static_cast<float*>(nullptr), recv, size_ - 1,
         2 * size_ - 3, Sum());
  }
}

// Pipelined along the ring root → root+1 → … → root−1: each rank passes a chunk on as it arrives.
void ZmqRingCommunicator::broadcast(float* data, size_t n, int root) {
  check_ready(Op::Broadcast);
  if (root < 0 || root >= size_)
    throw Error("ERR_ARGUMENT", where(Op::Broadcast) + ": root " + std::to_string(root) + " is not a rank");
  if (size_ == 1 || n == 0) return;
  const size_t chunk = kChunkBytes / sizeof(float);
  const bool last_in_line = (rank_ + 1) % size_ == root;
  for (size_t b = 0; b < n; b += chunk) {
    const size_t bytes = std::min(chunk, n - b) * sizeof(float);
    if (rank_ == root) {
      send_copy(Op::Broadcast, data + b, bytes);
      continue;
    }
    Msg in;
    recv_msg(Op::Broadcast, bytes, &in.m);
    std::memcpy(data + b, in.data(), bytes);
    if (!last_in_line) send_msg(Op::Broadcast, &in.m);
  }
}

// A one-element all-reduce: its result depends on every rank's contribution, so no rank leaves
// before all have arrived.
void ZmqRingCommunicator::barrier() {
  float token = 0;
  all_reduce(Op::Barrier, &token, 1, Sum());
}

}  // namespace paratrain
