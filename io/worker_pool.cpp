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
        // Queued in the same step as running_ drops, so a shutdown that saw this job end finds
        // its result ready for deliver_ready.
        {
            std::lock_guard lock(mutex_);
            ready_.push_back(std::move(delivery));
            --running_;
        }
        // One handler per result, each taking the oldest: results arrive in the order jobs
        // ended, and one that deliver_ready already ran is not run twice. `this` is touched only
        // while alive_ says the pool exists (both checked and cleared on the io_context thread).
        boost::asio::post(io_, [this, alive = alive_] {
            if (*alive) deliver_one();
        });
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

void WorkerPool::deliver_one() {
    Delivery delivery;
    {
        std::lock_guard lock(mutex_);
        if (ready_.empty()) return;
        delivery = std::move(ready_.front());
        ready_.pop_front();
    }
    delivery();  // without the lock: on_done may post another job
}

std::size_t WorkerPool::deliver_ready() {
    std::deque<Delivery> ready;
    {
        std::lock_guard lock(mutex_);
        ready.swap(ready_);
    }
    for (auto& delivery : ready) delivery();
    return ready.size();
}

void WorkerPool::join_all() {
    for (auto& t : threads_) {
        if (t.joinable()) t.join();
    }
}

}  // namespace patchswarm::io
