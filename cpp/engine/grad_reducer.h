// grad_reducer.h — data-parallel gradient averaging in buckets, on a communication thread that
// overlaps the rest of backward (PyTorch DDP / Megatron style). Backward finalises gradients from
// the end of the flat buffer towards its start (heads, last layer, …, embeddings), so "ready" is
// one frontier offset; whenever a bucket's worth is final behind it, that bucket is all-reduced.
// "Final" is the compute stream's word, not the host loop's: each ready_from records an event on
// the stream (on the GPU the kernels of backward are still running when the host has issued them);
// NCCL's stream waits for it on the device, a host-memory communicator's thread on the host. On
// the GPU the communication thread has a stream of its own (kernels::use_own_stream), so neither
// the averaging nor the wait for NCCL sits in the compute stream's queue.
#pragma once
#include <condition_variable>
#include <cstddef>    // size_t
#include <deque>
#include <exception>  // std::exception_ptr
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "../comm/communicator.h"  // Communicator
#include "../kernels/backend.h"    // kernels::StreamEvent, bind_thread, use_own_stream, scale

namespace paratrain {

class GradientReducer {
 public:
  // dp: the data-parallel group, used only from this reducer's thread from now on.
  GradientReducer(Communicator& dp, size_t bucket_elems);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // A backward pass over grads[0, total) begins.
  void begin(float* grads, size_t total);
  // grads[offset, total) are final: start every full bucket behind the frontier.
  void ready_from(size_t offset);
  // All gradients are final: start the rest, wait for every bucket (now averaged over the group),
  // and rethrow the first communication error.
  void finish();
  // Sums a few values over the group on the communication thread and waits (metrics).
  void all_reduce_now(double* data, size_t n);

 private:
  // All-reduces (and averages) grads[offset, launched_from_) on the thread once `ready` has
  // passed; moves the frontier.
  void launch_down_to(size_t offset, const kernels::StreamEvent* ready);
  const kernels::StreamEvent* record_ready();
  void enqueue(std::function<void()> job);
  void wait_idle();
  void run();

  Communicator& dp_;
  const size_t bucket_elems_;
  float* grads_ = nullptr;
  size_t launched_from_ = 0;  // [launched_from_, total) has been handed to the thread
  // One event per ready_from of a backward pass, reused pass after pass (the first pass grows it).
  std::deque<kernels::StreamEvent> events_;
  size_t events_used_ = 0;

  std::mutex mu_;
  std::condition_variable work_cv_, idle_cv_;
  std::deque<std::function<void()>> queue_;
  size_t pending_ = 0;
  std::exception_ptr error_;
  bool stop_ = false;
  std::thread thread_;  // last: starts after the members above exist
};

}  // namespace paratrain
