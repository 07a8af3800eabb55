// A fixed set of threads for the agent's blocking work (hashing a payload, an install or verify
// command, the reboot command). Unlike a detached thread, a job never outlives its owner's reach:
// its result is posted to the io_context only while the pool accepts results, and shutdown()
// stops that before it returns, so nothing is ever posted into a destroyed agent.
//
// Engineer E writes a generic io/worker_pool.hpp; this one is what the agent needs until the two
// are unified.
//
// Threading: construct, submit(), shutdown() and destroy on the io_context thread. Jobs run on the
// pool's threads and must capture values (and references to objects that outlive the process's
// work, such as the io::Env), never the owner.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace patchswarm::daemon {

class WorkerPool {
  public:
    // A job runs on a worker thread and returns the completion to run on the io_context.
    using Completion = std::function<void()>;
    using Job = std::function<Completion()>;

    WorkerPool(boost::asio::io_context& io, std::size_t threads);
    // shutdown() with the default bound, if not called before.
    ~WorkerPool();
    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;

    // Queues a job; false (and the job is dropped) after shutdown().
    bool submit(Job job);

    // Stops accepting jobs, drops the queued ones, waits up to `bound` for the running ones to
    // finish, then stops delivering and joins every thread that is done. A thread still busy
    // after the bound (a command stuck past its own timeout) is detached: it touches only the
    // pool's shared state, never the io_context or the owner, and its result is dropped (the
    // owner's state on disk must say what to do with work cut short). Returns the completions of
    // jobs that finished but did not run yet, for the caller to run now (no completion runs on
    // the io_context after this). Idempotent: later calls return nothing.
    [[nodiscard]] std::vector<Completion> shutdown(
        std::chrono::milliseconds bound = std::chrono::seconds(5));

    // Jobs queued or running (for tests).
    std::size_t busy() const;

    struct Shared;  // the queue and flags, shared with the threads (worker_pool.cpp)

  private:
    std::shared_ptr<Shared> shared_;
};

}  // namespace patchswarm::daemon
