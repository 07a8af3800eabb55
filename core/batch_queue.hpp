// A bounded queue that a single writer drains in batches (group commit: one transaction, one
// fsync, for everything that arrived while the last batch was being written), with the
// back-pressure answer for producers when it is full: how long until it has drained, from the
// writer's measured rate. Pure: times are passed in, so tests drive it with a fake clock.
//
// Threading: none of its own; the owner guards it (seeder/report_writer.cpp holds a mutex).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <deque>
#include <vector>

namespace patchswarm::core {

struct BatchLimits {
    std::size_t capacity = 2048;  // items waiting (not yet taken); more are refused
    std::size_t max_batch = 256;  // items per batch (one transaction)
    std::chrono::seconds max_retry_after{30};
};

template <class T>
class BatchQueue {
  public:
    using TimePoint = std::chrono::steady_clock::time_point;

    explicit BatchQueue(BatchLimits limits) : limits_(limits) {
        limits_.capacity = std::max<std::size_t>(limits_.capacity, 1);
        limits_.max_batch = std::max<std::size_t>(limits_.max_batch, 1);
    }

    // Queues `item` (moved from) unless capacity items are already waiting: then false and
    // `item` is left as it was.
    bool push(T& item) {
        if (items_.size() >= limits_.capacity) return false;
        items_.push_back(std::move(item));
        return true;
    }

    // Up to max_batch items, oldest first (empty when none wait). They count as in flight until
    // batch_done.
    std::vector<T> take_batch() {
        const std::size_t n = std::min(items_.size(), limits_.max_batch);
        std::vector<T> batch;
        batch.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            batch.push_back(std::move(items_.front()));
            items_.pop_front();
        }
        in_flight_ = n;
        return batch;
    }

    // The batch taken last (n items) was written between `started` and `finished`: updates the
    // drain rate (items per second, a moving average that follows a slower disk within a few
    // batches).
    void batch_done(std::size_t n, TimePoint started, TimePoint finished) {
        in_flight_ = 0;
        if (n == 0) return;
        const double seconds =
            std::max(std::chrono::duration<double>(finished - started).count(), 1e-4);
        const double rate = static_cast<double>(n) / seconds;
        rate_ = rate_ <= 0 ? rate : 0.7 * rate_ + 0.3 * rate;
    }

    // What a refused producer is told to wait: the time to drain what waits and what is in
    // flight at the measured rate, rounded up, 1 s .. max_retry_after (1 s before any batch).
    std::chrono::seconds retry_after() const {
        if (rate_ <= 0) return std::chrono::seconds(1);
        const double backlog = static_cast<double>(items_.size() + in_flight_);
        const double s = std::ceil(backlog / rate_);
        const double capped =
            std::clamp(s, 1.0, static_cast<double>(limits_.max_retry_after.count()));
        return std::chrono::seconds(static_cast<std::int64_t>(capped));
    }

    std::size_t size() const { return items_.size(); }
    bool empty() const { return items_.empty(); }
    std::size_t in_flight() const { return in_flight_; }
    double rate() const { return rate_; }  // items per second; 0 before the first batch
    const BatchLimits& limits() const { return limits_; }

  private:
    BatchLimits limits_;
    std::deque<T> items_;
    std::size_t in_flight_ = 0;
    double rate_ = 0;
};

}  // namespace patchswarm::core
