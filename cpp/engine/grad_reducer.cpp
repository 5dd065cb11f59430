// grad_reducer.cpp — see grad_reducer.h.
#include "grad_reducer.h"

namespace paratrain {

GradientReducer::GradientReducer(Communicator& dp, size_t bucket_elems)
    : dp_(dp), bucket_elems_(bucket_elems > 0 ? bucket_elems : 1), thread_([this] {
        try {
          kernels::bind_thread();
          kernels::use_own_stream();  // the CUDA build: off the compute stream (sync.h)
        } catch (...) {
          std::lock_guard<std::mutex> lock(mu_);
          error_ = std::current_exception();  // every job is skipped; finish() reports it
        }
        run();
      }) {}

GradientReducer::~GradientReducer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  thread_.join();
}

void GradientReducer::run() {
  for (;;) {
    std::function<void()> job;
    bool skip;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      job = std::move(queue_.front());
      queue_.pop_front();
      skip = static_cast<bool>(error_);  // after a failure the group is unusable: drain the queue
    }
    std::exception_ptr failed;
    if (!skip) {
      try {
        job();
      } catch (...) {
        failed = std::current_exception();
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (failed && !error_) error_ = failed;
      pending_ -= 1;
    }
    idle_cv_.notify_all();
  }
}

void GradientReducer::enqueue(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(job));
    pending_ += 1;
  }
  work_cv_.notify_one();
}

void GradientReducer::wait_idle() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_cv_.wait(lock, [&] { return pending_ == 0; });
  if (error_) {
    std::exception_ptr e = error_;
    error_ = nullptr;
    std::rethrow_exception(e);
  }
}

void GradientReducer::begin(float* grads, size_t total) {
  grads_ = grads;
  launched_from_ = total;
  events_used_ = 0;
}

// An event after everything issued so far on the compute stream. Only the thread running backward
// records; the communication thread only waits on events already recorded (a deque keeps their
// addresses when it grows).
const kernels::StreamEvent* GradientReducer::record_ready() {
  if (events_used_ == events_.size()) events_.emplace_back();
  kernels::StreamEvent* e = &events_[events_used_++];
  e->record();
  return e;
}

void GradientReducer::launch_down_to(size_t offset, const kernels::StreamEvent* ready) {
  float* data = grads_ + offset;
  const size_t n = launched_from_ - offset;
  launched_from_ = offset;
  const float inv = 1.0f / static_cast<float>(dp_.size());
  enqueue([this, data, n, inv, ready] {
    // NCCL's stream waits for the bucket's event on the device, so backward keeps running; a
    // communicator that reads host memory needs the gradients there, so the thread waits.
    if (dp_.reads_device_memory())
      dp_.after_event(ready->native());
    else
      ready->wait();
    dp_.all_reduce_sum(data, n);
    kernels::scale(data, static_cast<long>(n), inv);
    // This thread's stream is not the compute stream: the bucket is final when the job is done.
    kernels::synchronize_thread();
  });
}

void GradientReducer::ready_from(size_t offset) {
  if (launched_from_ > offset && launched_from_ - offset >= bucket_elems_) launch_down_to(offset, record_ready());
}

void GradientReducer::finish() {
  // The rest, in bucket-sized pieces so no single message grows with the model.
  const kernels::StreamEvent* ready = record_ready();
  while (launched_from_ > 0)
    launch_down_to(launched_from_ > bucket_elems_ ? launched_from_ - bucket_elems_ : 0, ready);
  wait_idle();
}

void GradientReducer::all_reduce_now(double* data, size_t n) {
  enqueue([this, data, n] { dp_.all_reduce_sum(data, n); });
  wait_idle();
}

}  // namespace paratrain
