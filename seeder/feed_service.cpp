#include "seeder/feed_service.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <list>

#include "core/envelope.hpp"

namespace patchswarm::seeder {

namespace asio = boost::asio;

struct FeedService::Impl : std::enable_shared_from_this<Impl> {
    struct Waiter {
        explicit Waiter(asio::io_context& io, io::http::Respond r)
            : respond(std::move(r)), timer(io) {}
        io::http::Respond respond;
        asio::steady_timer timer;
    };
    using Waiters = std::list<std::shared_ptr<Waiter>>;

    Impl(asio::io_context& io, FleetDb& db, crypto::KeyPair key, FeedOptions options)
        : io(io), db(db), key(key), options(std::move(options)) {}

    io::http::Response current_response() const {
        if (envelope.empty()) {
            return io::http::json_response(
                503, R"({"error":"unavailable","message":"no feed signed yet"})");
        }
        auto res = io::http::json_response(200, envelope);
        res.headers["Cache-Control"] = "no-store";
        return res;
    }

    void answer(Waiter& w) {
        w.timer.cancel();
        if (auto respond = std::exchange(w.respond, nullptr)) respond(current_response());
    }

    void answer_all() {
        Waiters held;
        held.swap(waiters);  // a Respond may re-enter get(); keep the list consistent
        for (auto& w : held) answer(*w);
    }

    void hold(std::chrono::seconds wait, io::http::Respond respond) {
        auto w = std::make_shared<Waiter>(io, std::move(respond));
        const auto it = waiters.insert(waiters.end(), w);
        w->timer.expires_after(wait);
        w->timer.async_wait([weak = weak_from_this(), w, it](const boost::system::error_code& ec) {
            auto self = weak.lock();
            if (ec || !self || !w->respond) return;  // answered by a new feed, or shutting down
            self->waiters.erase(it);
            self->answer(*w);
        });
    }

    asio::io_context& io;
    FleetDb& db;
    crypto::KeyPair key;
    FeedOptions options;
    core::Feed feed;
    std::string envelope;  // serialized signed feed, the exact bytes served
    Waiters waiters;
};

FeedService::FeedService(asio::io_context& io, FleetDb& db, crypto::KeyPair feed_key,
                         FeedOptions options)
    : impl_(std::make_shared<Impl>(io, db, feed_key, std::move(options))) {}

FeedService::~FeedService() {
    for (auto& w : impl_->waiters) w->timer.cancel();
}

Result<std::uint64_t> FeedService::publish(std::vector<core::FeedEntry> releases,
                                           std::vector<std::string> halted, std::int64_t now) {
    auto sequence =
        impl_->db.next_feed_sequence(static_cast<std::uint64_t>(std::max<std::int64_t>(now, 0)));
    if (!sequence) return std::unexpected(sequence.error());
    core::Feed feed;
    feed.repository = impl_->options.repository;
    feed.sequence = *sequence;
    feed.issued = now;
    feed.expires = now + impl_->options.expiry.count();
    feed.releases = std::move(releases);
    feed.halted = std::move(halted);
    if (auto ok = core::validate_feed(feed); !ok) {
        return fail(ok.error().code, "feed would be invalid: " + ok.error().message);
    }
    const std::string bytes = core::serialize_feed(feed);
    const crypto::KeyPair keys[] = {impl_->key};
    impl_->envelope = core::serialize_envelope(
        core::sign_envelope(core::payload_type::feed, crypto::as_bytes(bytes), keys));
    impl_->feed = std::move(feed);
    spdlog::info("feed signed: sequence {}, {} release(s), {} halted, expires in {} s", *sequence,
                 impl_->feed.releases.size(), impl_->feed.halted.size(),
                 impl_->options.expiry.count());
    impl_->answer_all();
    return *sequence;
}

void FeedService::set_key(crypto::KeyPair key) {
    impl_->key = key;
}

bool FeedService::needs_refresh(std::int64_t now) const {
    if (impl_->envelope.empty()) return true;
    const auto& f = impl_->feed;
    return now >= f.issued + (f.expires - f.issued) / 2;
}

std::optional<std::int64_t> FeedService::refresh_at() const {
    if (impl_->envelope.empty()) return std::nullopt;
    const auto& f = impl_->feed;
    return f.issued + (f.expires - f.issued) / 2;
}

void FeedService::get(std::optional<std::uint64_t> after, std::chrono::seconds wait,
                      io::http::Respond respond) {
    wait = std::clamp(wait, std::chrono::seconds(0), kMaxFeedWait);
    const bool answer_now =
        impl_->envelope.empty() || !after || wait.count() == 0 || impl_->feed.sequence > *after;
    if (answer_now) {
        respond(impl_->current_response());
        return;
    }
    impl_->hold(wait, std::move(respond));
}

void FeedService::release_waiters() {
    impl_->answer_all();
}

std::uint64_t FeedService::sequence() const {
    return impl_->feed.sequence;
}

const std::vector<core::FeedEntry>& FeedService::releases() const {
    return impl_->feed.releases;
}

const std::vector<std::string>& FeedService::halted() const {
    return impl_->feed.halted;
}

std::size_t FeedService::waiting() const {
    return impl_->waiters.size();
}

}  // namespace patchswarm::seeder
