// Worker pool (see worker_pool.hpp).
#include "io/worker_pool.hpp"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

namespace patchswarm::io {

WorkerPool::WorkerPool(boost::asio::io_context& io, std::size_t threads) : io_(io) {
    threads_.reserve(std::max<std::size_t>(threads, 1));
    for (std::size_t i = 0; i < std::max<std::size_t>(threads, 1); ++i) {
        threads_.emplace_back([this] { run_worker(); });
    }
}

WorkerPool::~WorkerPool() {
    // First, so that a job ending while we wait below cannot reach the owner any more.
    *alive_ = false;
    (void)shutdown(std::chrono::milliseconds(0));
    join_all();
}

bool WorkerPool::submit(Task task) {
    {
        std::lock_guard lock(mutex_);
        if (stopping_) return false;
        queue_.push_back(std::move(task));
    }
    wake_.notify_one();
    return true;
}

void WorkerPool::run_worker() {
    for (;;) {
        Task task;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopping, and shutdown dropped what was queued
            task = std::move(queue_.front());
            queue_.pop_front();
            ++running_;
        }
        Delivery delivery = task(stop_.get_token());
        task = nullptr;  // the job's captures die here, on the worker, not on the io_context
        // Posted before running_ drops, so a shutdown that saw this job end finds its result
        // already queued on the io_context.
        boost::asio::post(io_, [alive = alive_, delivery = std::move(delivery)]() mutable {
            if (*alive) delivery();
        });
        {
            std::lock_guard lock(mutex_);
            --running_;
        }
        idle_.notify_all();
    }
}

bool WorkerPool::shutdown(std::chrono::milliseconds timeout) {
    std::deque<Task> dropped;  // destroyed after the lock is released
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        dropped.swap(queue_);
    }
    stop_.request_stop();
    wake_.notify_all();
    {
        std::unique_lock lock(mutex_);
        if (!idle_.wait_for(lock, timeout, [this] { return running_ == 0; })) return false;
    }
    join_all();
    return true;
}

void WorkerPool::join_all() {
    for (auto& t : threads_) {
        if (t.joinable()) t.join();
    }
}

}  // namespace patchswarm::io
