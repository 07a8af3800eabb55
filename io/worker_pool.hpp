// A fixed set of threads for blocking work (hashing a payload, running install and verify
// commands) whose results go back to the program's io_context.
//
// Ownership and threading: the owner (the agent's ReleaseRunner, say) holds the pool as a member,
// and creates, posts to, shuts down and destroys it on its io_context thread. Jobs run on the
// pool's threads in the order they were posted (one FIFO queue). Each on_done runs on the
// io_context thread, and only while the pool exists: the destructor cancels every delivery not
// yet run, so on_done may capture the owner's `this`. The io_context must outlive the pool.
// Every thread is joined (by shutdown or the destructor); none is ever detached.
//
// A job must not throw (an exception escaping it ends the program, as any bug on a thread does).
// It should end soon after its stop token is set: a job that runs a command passes the token on
// as io::ProcessSpec::stop, so shutdown kills the command's process group instead of waiting for
// it or leaving it behind. A job that ignores the token (hashing a payload) must bound its own
// run time: the destructor waits for it however long it takes.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <stop_token>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace patchswarm::io {

class WorkerPool {
  public:
    // Starts `threads` worker threads (at least one).
    WorkerPool(boost::asio::io_context& io, std::size_t threads);
    // Cancels every delivery not yet run, drops queued jobs, asks running ones to stop and
    // joins every thread, waiting for running jobs however long they take.
    ~WorkerPool();
    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;

    // Queues `job`; once it has run on a worker, `on_done(result)` (or `on_done()` for a job
    // returning void) runs on the io_context. `job` is callable as `T()` or as
    // `T(std::stop_token)`: the token is set when shutdown starts, so a long job can end early.
    // Both are moved into the pool (move-only captures are fine); the result is moved into
    // on_done. Returns false, and neither runs, once shutdown has started.
    template <class Job, class Done>
    [[nodiscard]] bool post(Job job, Done on_done);

    // Stops accepting jobs, drops queued jobs that have not started, sets the stop token of the
    // running ones and waits up to `timeout` for them to end, then joins every thread. Results of
    // jobs that end during the wait are queued for the io_context as any other (deliver_ready
    // runs them at once). Returns true once every thread is joined; false if a job was still
    // running at the deadline (its thread is joined later, by another shutdown or the
    // destructor, and its result, if the pool still exists, is delivered as usual).
    bool shutdown(std::chrono::milliseconds timeout);

    // Runs now, on the calling (io_context) thread, the on_done of every job that has ended but
    // whose result has not been delivered yet, in the order they ended (the deliveries already
    // posted to the io_context then find nothing left to do). For an owner that stops its
    // io_context right after shutdown: a job that ended within the bound is not lost. Returns
    // how many ran.
    std::size_t deliver_ready();

  private:
    using Delivery = std::move_only_function<void()>;
    // Runs the job on a worker and returns what to run on the io_context.
    using Task = std::move_only_function<Delivery(std::stop_token)>;

    bool submit(Task task);
    void run_worker();
    void join_all();
    // On the io_context: runs the oldest undelivered result, if deliver_ready left one.
    void deliver_one();

    boost::asio::io_context& io_;
    // Checked by every delivery on the io_context thread; cleared by the destructor there.
    std::shared_ptr<std::atomic<bool>> alive_ = std::make_shared<std::atomic<bool>>(true);
    std::stop_source stop_;
    std::mutex mutex_;
    std::condition_variable wake_;  // a job was queued, or shutdown started
    std::condition_variable idle_;  // a running job ended
    std::deque<Task> queue_;        // guarded by mutex_
    std::deque<Delivery> ready_;    // ended, not yet delivered; guarded by mutex_
    std::size_t running_ = 0;       // guarded by mutex_
    bool stopping_ = false;         // guarded by mutex_
    std::vector<std::thread> threads_;
};

template <class Job, class Done>
bool WorkerPool::post(Job job, Done on_done) {
    return submit([job = std::move(job),
                   on_done = std::move(on_done)](std::stop_token stop) mutable -> Delivery {
        auto run = [&] {
            if constexpr (std::is_invocable_v<Job&, std::stop_token>) {
                return job(stop);
            } else {
                return job();
            }
        };
        if constexpr (std::is_void_v<decltype(run())>) {
            run();
            return Delivery(std::move(on_done));
        } else {
            return Delivery([on_done = std::move(on_done), result = run()]() mutable {
                on_done(std::move(result));
            });
        }
    });
}

}  // namespace patchswarm::io
