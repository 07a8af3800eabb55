#include "daemon/worker_pool.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace patchswarm::daemon {

// Shared between the owner and its threads, so a detached thread still has a live mutex.
struct WorkerPool::Shared {
    explicit Shared(boost::asio::io_context& io_) : io(io_) {}
    boost::asio::io_context& io;
    mutable std::mutex mu;
    std::condition_variable wake;  // a job queued, or stop
    std::condition_variable idle;  // a job finished
    std::deque<Job> queue;
    std::deque<Completion> ready;  // finished, not yet run on the io_context
    std::size_t running = 0;
    bool accepting = true;   // submit() allowed
    bool delivering = true;  // completions may still run
    std::vector<std::thread> threads;
    std::vector<std::thread::id> finished;  // threads that left their loop
};

namespace {

// On the io_context: runs what is ready, unless shutdown() took it over.
void run_ready(const std::shared_ptr<WorkerPool::Shared>& s) {
    std::deque<WorkerPool::Completion> ready;
    {
        std::lock_guard lock(s->mu);
        if (!s->delivering) return;
        ready.swap(s->ready);
    }
    for (auto& done : ready) done();
}

void worker_loop(const std::shared_ptr<WorkerPool::Shared>& s) {
    for (;;) {
        WorkerPool::Job job;
        {
            std::unique_lock lock(s->mu);
            s->wake.wait(lock, [&] { return !s->queue.empty() || !s->accepting; });
            if (s->queue.empty()) break;
            job = std::move(s->queue.front());
            s->queue.pop_front();
            ++s->running;
        }
        WorkerPool::Completion done = job();
        {
            std::lock_guard lock(s->mu);
            --s->running;
            if (s->delivering && done) {
                s->ready.push_back(std::move(done));
                boost::asio::post(s->io, [s] { run_ready(s); });
            }
        }
        s->idle.notify_all();
    }
    std::lock_guard lock(s->mu);
    s->finished.push_back(std::this_thread::get_id());
}

}  // namespace

WorkerPool::WorkerPool(boost::asio::io_context& io, std::size_t threads)
    : shared_(std::make_shared<Shared>(io)) {
    for (std::size_t i = 0; i < threads; ++i) {
        shared_->threads.emplace_back([s = shared_] { worker_loop(s); });
    }
}

WorkerPool::~WorkerPool() {
    // Nobody runs what is handed back here: the owner is being destroyed.
    (void)shutdown(std::chrono::milliseconds(0));
}

bool WorkerPool::submit(Job job) {
    {
        std::lock_guard lock(shared_->mu);
        if (!shared_->accepting) return false;
        shared_->queue.push_back(std::move(job));
    }
    shared_->wake.notify_one();
    return true;
}

std::size_t WorkerPool::busy() const {
    std::lock_guard lock(shared_->mu);
    return shared_->queue.size() + shared_->running;
}

std::vector<WorkerPool::Completion> WorkerPool::shutdown(std::chrono::milliseconds bound) {
    std::vector<std::thread> threads;
    std::vector<Completion> handed_back;
    {
        std::unique_lock lock(shared_->mu);
        if (!shared_->delivering) return {};
        shared_->accepting = false;
        shared_->queue.clear();
        shared_->wake.notify_all();
        shared_->idle.wait_for(lock, bound, [&] { return shared_->running == 0; });
        shared_->delivering = false;
        for (auto& done : shared_->ready) handed_back.push_back(std::move(done));
        shared_->ready.clear();
        threads = std::move(shared_->threads);
        shared_->threads.clear();
    }
    for (auto& t : threads) {
        bool done = false;
        {
            std::lock_guard lock(shared_->mu);
            for (const auto& id : shared_->finished) done = done || id == t.get_id();
            // With no job running every thread is leaving its loop now.
            done = done || shared_->running == 0;
        }
        if (done) {
            t.join();
        } else {
            t.detach();
        }
    }
    return handed_back;
}

}  // namespace patchswarm::daemon
