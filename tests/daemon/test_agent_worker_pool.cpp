// daemon::WorkerPool: results come back on the io_context, shutdown() is bounded even with a job
// that blocks, and nothing runs on the io_context after it.
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <future>

#include "daemon/worker_pool.hpp"
#include "support/process.hpp"

using namespace patchswarm;
using namespace std::chrono_literals;

TEST_CASE("a job's completion runs on the io_context thread", "[core]") {
    boost::asio::io_context io;
    // Keeps run_for() running until the completion arrives (it would return at once, idle).
    auto guard = boost::asio::make_work_guard(io);
    daemon::WorkerPool pool(io, 2);
    std::thread::id worker_thread;
    std::thread::id completion_thread;
    REQUIRE(pool.submit([&]() -> daemon::WorkerPool::Completion {
        worker_thread = std::this_thread::get_id();
        return [&] {
            completion_thread = std::this_thread::get_id();
            io.stop();
        };
    }));
    io.run_for(10s);
    CHECK(completion_thread == std::this_thread::get_id());
    CHECK(worker_thread != std::this_thread::get_id());
    CHECK(pool.shutdown(0ms).empty());
}

TEST_CASE("shutdown with a blocked job returns after its bound, and the late result is dropped",
          "[core]") {
    boost::asio::io_context io;
    std::promise<void> release;
    auto released = release.get_future().share();
    std::atomic<bool> entered{false};
    std::atomic<bool> left{false};
    std::atomic<bool> completion_ran{false};
    {
        daemon::WorkerPool pool(io, 1);
        REQUIRE(pool.submit([&, released]() -> daemon::WorkerPool::Completion {
            entered = true;
            released.wait();
            left = true;
            return [&] { completion_ran = true; };
        }));
        REQUIRE(test::wait_until([&] { return entered.load(); }, 10s));
        CHECK(pool.busy() == 1);
        const auto handed_back = pool.shutdown(100ms);
        CHECK(handed_back.empty());
        CHECK_FALSE(pool.submit([]() -> daemon::WorkerPool::Completion { return {}; }));
    }  // the pool is gone while its job still runs
    release.set_value();
    REQUIRE(test::wait_until([&] { return left.load(); }, 10s));
    io.run_for(200ms);
    CHECK_FALSE(completion_ran);
}

TEST_CASE("a job that finishes within the shutdown bound is handed back to run", "[core]") {
    boost::asio::io_context io;
    daemon::WorkerPool pool(io, 1);
    std::promise<void> release;
    auto released = release.get_future().share();
    std::atomic<bool> entered{false};
    bool completion_ran = false;
    REQUIRE(pool.submit([&, released]() -> daemon::WorkerPool::Completion {
        entered = true;
        released.wait();
        return [&] { completion_ran = true; };
    }));
    REQUIRE(test::wait_until([&] { return entered.load(); }, 10s));
    std::thread releaser([&] { release.set_value(); });
    auto handed_back = pool.shutdown(10s);
    releaser.join();
    REQUIRE(handed_back.size() == 1);
    handed_back[0]();
    CHECK(completion_ran);
    // Nothing was left posted to run on the io_context.
    io.run_for(100ms);
}
