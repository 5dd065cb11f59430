// grad_reducer.cpp — see grad_reducer.h.
#include "grad_reducer.h"

namespace paratrain {

GradientReducer::GradientReducer(Communicator& dp, size_t bucket_elems)
    : dp_(dp), bucket_elems_(bucket_elems > 0 ? bucket_elems : 1), thread_([this] { run(); }) {}

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
}

void GradientReducer::launch_down_to(size_t offset) {
  float* data = grads_ + offset;
  const size_t n = launched_from_ - offset;
  launched_from_ = offset;
  const float inv = 1.0f / static_cast<float>(dp_.size());
  enqueue([this, data, n, inv] {
    dp_.all_reduce_sum(data, n);
    for (size_t i = 0; i < n; i++) data[i] *= inv;
  });
}

void GradientReducer::ready_from(size_t offset) {
  if (launched_from_ > offset && launched_from_ - offset >= bucket_elems_) launch_down_to(offset);
}

void GradientReducer::finish() {
  // The rest, in bucket-sized pieces so no single message grows with the model.
  while (launched_from_ > 0) launch_down_to(launched_from_ > bucket_elems_ ? launched_from_ - bucket_elems_ : 0);
  wait_idle();
}

void GradientReducer::all_reduce_now(double* data, size_t n) {
  enqueue([this, data, n] { dp_.all_reduce_sum(data, n); });
  wait_idle();
}

}  // namespace paratrain
