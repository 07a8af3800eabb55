// core/batch_queue.hpp: the report writer's queue, its batches and the back-pressure it answers
// with, driven by a fake clock (time points the test makes up).
#include <catch2/catch.hpp>
#include <string>

#include "core/batch_queue.hpp"

using namespace patchswarm::core;
using namespace std::chrono_literals;
using TimePoint = std::chrono::steady_clock::time_point;

TEST_CASE("a full queue refuses and keeps the item, and batches come oldest first, bounded",
          "[core]") {
    BatchQueue<std::string> q(BatchLimits{3, 2, 30s});
    for (std::string s : {"a", "b", "c"}) REQUIRE(q.push(s));
    std::string late = "d";
    CHECK_FALSE(q.push(late));
    CHECK(late == "d");  // not moved from: the caller still has it to answer 503 with
    CHECK(q.size() == 3);

    auto first = q.take_batch();
    CHECK(first == std::vector<std::string>{"a", "b"});
    CHECK(q.in_flight() == 2);
    CHECK(q.push(late));  // room again as soon as a batch is taken
    auto second = q.take_batch();
    CHECK(second == std::vector<std::string>{"c", "d"});
    CHECK(q.take_batch().empty());
}

TEST_CASE("Retry-After is the backlog over the measured drain rate, 1 s to the cap", "[core]") {
    BatchQueue<int> q(BatchLimits{1000, 100, 30s});
    const TimePoint t0{};
    int v = 0;
    for (int i = 0; i < 500; ++i) REQUIRE(q.push(v));
    CHECK(q.retry_after() == 1s);  // nothing measured yet

    // 100 reports committed in 0.5 s: 200 a second.
    auto batch = q.take_batch();
    q.batch_done(batch.size(), t0, t0 + 500ms);
    CHECK(q.rate() == Approx(200));
    CHECK(q.retry_after() == 2s);  // 400 waiting at 200/s

    // A disk that slows to 10 a second: the estimate follows, and the answer is capped.
    for (int i = 0; i < 20; ++i) {
        batch = q.take_batch();
        q.batch_done(batch.size(), t0, t0 + 10s);
        for (std::size_t k = 0; k < batch.size(); ++k) REQUIRE(q.push(v));
    }
    CHECK(q.rate() == Approx(10).epsilon(0.05));
    CHECK(q.retry_after() == 30s);

    // Drained fast: the shortest answer is still one second.
    for (int i = 0; i < 30; ++i) {
        batch = q.take_batch();
        q.batch_done(batch.size(), t0, t0 + 1ms);
    }
    CHECK(q.empty());
    CHECK(q.retry_after() == 1s);
}
