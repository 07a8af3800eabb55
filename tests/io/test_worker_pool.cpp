// io::WorkerPool: blocking jobs on a fixed set of threads, results on the io_context thread,
// a shutdown that stops running commands, waits and joins, results that ended within its bound
// handed over, and no delivery into an owner that is gone.
#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "io/process.hpp"
#include "io/worker_pool.hpp"
#include "support/process.hpp"

using namespace patchswarm;
using namespace std::chrono_literals;

namespace {

// Runs the io_context until `done` holds or the deadline passes; never a fixed sleep.
bool run_until(boost::asio::io_context& io, const std::function<bool()>& done,
               std::chrono::steady_clock::duration timeout = 30s) {
    if (io.stopped()) io.restart();
    auto guard = boost::asio::make_work_guard(io);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        io.run_for(10ms);
    }
    return true;
}

// A job's end that the test opens.
class Gate {
  public:
    void open() {
        {
            std::lock_guard lock(mutex_);
            open_ = true;
        }
        cv_.notify_all();
    }
    void wait() {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [this] { return open_; });
    }

  private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool open_ = false;
};

// Blocks until the pool's shutdown sets the job's stop token.
void wait_for_stop(std::stop_token stop) {
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lock(m);
    cv.wait(lock, stop, [] { return false; });
}

// What the agent will be: something that owns a pool and whose `this` its callbacks use.
struct Owner {
    explicit Owner(boost::asio::io_context& io, std::size_t threads) : pool(io, threads) {}
    std::vector<int> results;
    io::WorkerPool pool;  // last: destroyed first, before what its callbacks touch
};

}  // namespace

TEST_CASE("a worker pool runs jobs off the io thread and delivers results on it", "[io]") {
    boost::asio::io_context io;
    const auto io_thread = std::this_thread::get_id();
    io::WorkerPool pool(io, 3);
    constexpr int kJobs = 20;
    std::atomic<int> off_io_thread{0};
    std::vector<int> sums;
    int delivered_on_io_thread = 0;
    for (int i = 0; i < kJobs; ++i) {
        const bool queued = pool.post(
            [i, io_thread, &off_io_thread] {
                if (std::this_thread::get_id() != io_thread) ++off_io_thread;
                return std::make_unique<int>(i * i);  // a move-only result
            },
            [&](std::unique_ptr<int> r) {
                if (std::this_thread::get_id() == io_thread) ++delivered_on_io_thread;
                sums.push_back(*r);
            });
        REQUIRE(queued);
    }
    REQUIRE(run_until(io, [&] { return sums.size() == kJobs; }));
    CHECK(off_io_thread == kJobs);
    CHECK(delivered_on_io_thread == kJobs);
    std::sort(sums.begin(), sums.end());
    for (int i = 0; i < kJobs; ++i) CHECK(sums[static_cast<std::size_t>(i)] == i * i);
    CHECK(pool.shutdown(10s));
}

TEST_CASE("a one-thread worker pool runs its jobs in the order they were posted", "[io]") {
    boost::asio::io_context io;
    io::WorkerPool pool(io, 1);
    std::vector<int> ran;  // written by the one worker only
    std::vector<int> delivered;
    for (int i = 0; i < 10; ++i) {
        REQUIRE(pool.post([i, &ran] { ran.push_back(i); },
                          [i, &delivered] { delivered.push_back(i); }));
    }
    REQUIRE(run_until(io, [&] { return delivered.size() == 10; }));
    CHECK(pool.shutdown(10s));
    CHECK(ran == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
    CHECK(delivered == ran);
}

TEST_CASE("shutdown waits for a running job and nothing reaches a destroyed owner", "[io]") {
    boost::asio::io_context io;
    auto owner = std::make_unique<Owner>(io, 2);
    std::latch started(1);
    std::atomic<bool> job_ended{false};
    int delivered = 0;
    Owner* self = owner.get();
    REQUIRE(owner->pool.post(
        [&](std::stop_token stop) {
            started.count_down();
            wait_for_stop(stop);
            job_ended = true;
            return 42;
        },
        [self, &delivered](int r) {
            self->results.push_back(r);  // would be a use after free without the cancel
            ++delivered;
        }));
    started.wait();

    SECTION("the owner goes away after shutdown") {
        CHECK(owner->pool.shutdown(30s));
        CHECK(job_ended);  // shutdown returned only after the running job ended
        owner.reset();
        // The result was posted before the owner went: the handler runs, and drops it.
        CHECK(io.poll() >= 1);
        CHECK(delivered == 0);
    }
    SECTION("the owner that is still there after shutdown gets the result") {
        CHECK(owner->pool.shutdown(30s));
        CHECK(job_ended);
        io.poll();
        CHECK(delivered == 1);
        CHECK(owner->results == std::vector<int>{42});
    }
}

TEST_CASE("jobs posted after shutdown are refused, and jobs still queued are dropped", "[io]") {
    boost::asio::io_context io;
    io::WorkerPool pool(io, 1);
    std::latch started(1);
    std::atomic<int> ran{0};
    int delivered = 0;
    REQUIRE(pool.post(
        [&](std::stop_token stop) {
            started.count_down();
            wait_for_stop(stop);
            ++ran;
        },
        [&] { ++delivered; }));
    started.wait();
    // The only worker is busy: this one waits in the queue.
    REQUIRE(pool.post([&] { ++ran; }, [&] { ++delivered; }));
    CHECK(pool.shutdown(30s));
    CHECK(ran == 1);
    CHECK_FALSE(pool.post([&] { ++ran; }, [&] { ++delivered; }));
    io.poll();
    CHECK(ran == 1);
    CHECK(delivered == 1);  // the job that was running; neither the queued nor the refused one
}

TEST_CASE("a job running past the shutdown bound is reported and joined by the destructor",
          "[io]") {
    boost::asio::io_context io;
    Gate gate;
    std::latch started(1);
    std::atomic<bool> job_ended{false};
    int delivered = 0;
    {
        io::WorkerPool pool(io, 2);
        // Ignores its stop token: it ends only when the test opens the gate.
        REQUIRE(pool.post(
            [&] {
                started.count_down();
                gate.wait();
                job_ended = true;
            },
            [&] { ++delivered; }));
        started.wait();
        CHECK_FALSE(pool.shutdown(50ms));
        CHECK_FALSE(job_ended);
        CHECK_FALSE(pool.post([] {}, [] {}));
        gate.open();
        // The destructor joins the worker, so the job has ended once it returns.
    }
    CHECK(job_ended);
    io.poll();
    CHECK(delivered == 0);  // the pool was gone before the io_context ran the delivery
}

TEST_CASE("deliver_ready runs the results of jobs that ended within the shutdown bound, once",
          "[io]") {
    boost::asio::io_context io;
    io::WorkerPool pool(io, 2);
    std::latch started(1);
    std::vector<int> delivered;
    REQUIRE(pool.post(
        [&](std::stop_token stop) {
            started.count_down();
            wait_for_stop(stop);
            return 7;
        },
        [&](int r) { delivered.push_back(r); }));
    started.wait();
    CHECK(pool.shutdown(30s));
    // An owner about to stop its io_context takes the result here, not from the io_context.
    CHECK(delivered.empty());
    CHECK(pool.deliver_ready() == 1);
    CHECK(delivered == std::vector<int>{7});
    // The delivery posted to the io_context finds nothing left: no second run.
    io.poll();
    CHECK(delivered == std::vector<int>{7});
    CHECK(pool.deliver_ready() == 0);
}

TEST_CASE("shutdown stops a job's running command through its stop token and joins it", "[io]") {
    test::TempDir dir;
    boost::asio::io_context io;
    io::WorkerPool pool(io, 1);
    io::ProcessSpec spec;
    // The group's leader writes its pid (the group id), then becomes the sleep.
    spec.argv = {"/bin/sh", "-c", "echo $$ > pid.tmp && mv pid.tmp pid && exec sleep 60"};
    spec.cwd = dir.path();
    spec.timeout = 60s;
    std::optional<io::ProcessResult> result;
    std::string error;
    REQUIRE(pool.post(
        [spec](std::stop_token stop) mutable {
            spec.stop = std::move(stop);
            return io::run_process(spec);
        },
        [&](Result<io::ProcessResult> r) {
            if (r) {
                result = std::move(*r);
            } else {
                error = r.error().message;
            }
        }));
    REQUIRE(test::wait_until([&] { return std::filesystem::exists(dir / "pid"); }, 30s));
    pid_t group = 0;
    std::ifstream{dir / "pid"} >> group;
    REQUIRE(group > 0);
    REQUIRE(test::process_group_alive(group));
    CHECK(pool.shutdown(30s));  // every thread joined: the command did not hold it for 60 s
    pool.deliver_ready();
    INFO(error);
    REQUIRE(result.has_value());
    CHECK(result->stopped);
    CHECK_FALSE(result->timed_out);
    CHECK(test::wait_until([&] { return !test::process_group_alive(group); }, 10s));
}
