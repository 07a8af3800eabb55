// libtorrent's alerts onto the io_context, and the torrent alerts into project events (see
// detail.hpp for the pieces and alerts.hpp for the events).
#include "io/swarm/alerts.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <libtorrent/alert_types.hpp>
#include <libtorrent/file_storage.hpp>
#include <libtorrent/session.hpp>
#include <libtorrent/torrent_info.hpp>
#include <libtorrent/torrent_status.hpp>
#include <utility>

#include "io/swarm/detail.hpp"

namespace patchswarm::io::swarm::detail {

namespace {

constexpr int kBlockSize = 16 * 1024;

// "http://user:secret@host/..." -> "http://***@host/...": web seed URLs carry an endpoint's
// credentials, and libtorrent's messages quote them.
std::string without_userinfo(std::string text) {
    for (std::size_t from = 0;;) {
        const auto scheme = text.find("://", from);
        if (scheme == std::string::npos) return text;
        const auto start = scheme + 3;
        const auto end = text.find_first_of("/ \t\r\n", start);
        const auto at = text.find('@', start);
        if (at != std::string::npos && (end == std::string::npos || at < end)) {
            text.replace(start, at - start, "***");
        }
        from = start;
    }
}

std::string endpoint_string(const lt::tcp::endpoint& ep) {
    const auto address = ep.address();
    if (address.is_v6()) return "[" + address.to_string() + "]:" + std::to_string(ep.port());
    return address.to_string() + ":" + std::to_string(ep.port());
}

bool is_checking(lt::torrent_status::state_t s) {
    return s == lt::torrent_status::checking_files || s == lt::torrent_status::checking_resume_data;
}

TorrentState fold_state(lt::torrent_status::state_t s) {
    switch (s) {
        case lt::torrent_status::checking_files:
        case lt::torrent_status::checking_resume_data:
            return TorrentState::checking;
        case lt::torrent_status::finished:
            return TorrentState::finished;
        case lt::torrent_status::seeding:
            return TorrentState::seeding;
        default:
            return TorrentState::downloading;
    }
}

}  // namespace

// ---- AlertPump -------------------------------------------------------------------------------

AlertPump::AlertPump(boost::asio::io_context& io, std::string label, Handler handler)
    : io_(io), label_(std::move(label)), handler_(std::move(handler)) {}

AlertPump::~AlertPump() {
    stop();
}

void AlertPump::start(lt::session& session) {
    session_ = &session;
    std::weak_ptr<Token> weak = token_;
    boost::asio::io_context* io = &io_;
    session.set_alert_notify([weak, io, self = this] {
        // libtorrent's thread: only hop to the io_context, where `self` is checked.
        auto token = weak.lock();
        if (!token || !token->alive) return;
        boost::asio::post(*io, [token, self] {
            if (token->alive) self->drain();
        });
    });
    // The notify fires only when the queue goes from empty to non-empty.
    post([this] { drain(); });
}

void AlertPump::stop() {
    token_->alive = false;
    if (session_) session_->set_alert_notify([] {});
    session_ = nullptr;
}

void AlertPump::drain() {
    if (!session_ || draining_) return;
    draining_ = true;
    struct Reset {
        bool& flag;
        ~Reset() { flag = false; }
    } reset{draining_};
    std::vector<lt::alert*> alerts;
    session_->pop_alerts(&alerts);
    const bool trace = spdlog::should_log(spdlog::level::trace);
    for (const lt::alert* alert : alerts) {
        if (trace) spdlog::trace("swarm {}: {}", label_, without_userinfo(alert->message()));
        handler_(*alert);
        // A handler may have stopped the pump (its session is going away).
        if (!session_) return;
    }
}

void AlertPump::post(std::function<void()> fn) {
    boost::asio::post(io_, [token = token_, fn = std::move(fn)] {
        if (token->alive) fn();
    });
}

// ---- attribution and status ------------------------------------------------------------------

Source PeerOrigins::classify(const boost::asio::ip::address& address) const {
    if (seeders.contains(address)) return Source::seeder;
    if (site.empty()) return Source::lan_peer;
    const auto ip = core::parse_ip(address.to_string());
    if (!ip) return Source::outside_peer;
    const bool inside =
        std::any_of(site.begin(), site.end(), [&](const core::Cidr& r) { return r.contains(*ip); });
    return inside ? Source::lan_peer : Source::outside_peer;
}

Status to_status(const std::string& id, const Torrent& t, const lt::torrent_status& ts) {
    Status s;
    s.id = id;
    s.state = fold_state(ts.state);
    s.bytes_from_peers = t.bytes_from_peers;
    s.bytes_from_seeder = t.bytes_from_seeder;
    s.bytes_from_lan = t.bytes_from_peers - t.bytes_from_outside_peers;
    s.bytes_from_outside_site = t.bytes_from_seeder + t.bytes_from_outside_peers;
    s.total_wanted = static_cast<std::uint64_t>(std::max<std::int64_t>(0, ts.total_wanted));
    s.total_done = static_cast<std::uint64_t>(std::max<std::int64_t>(0, ts.total_wanted_done));
    s.progress = s.total_wanted > 0
                     ? static_cast<double>(s.total_done) / static_cast<double>(s.total_wanted)
                     : (ts.is_finished ? 1.0 : 0.0);
    s.total_uploaded =
        static_cast<std::uint64_t>(std::max<std::int64_t>(0, ts.total_payload_upload));
    s.download_rate = ts.download_payload_rate;
    s.upload_rate = ts.upload_payload_rate;
    s.num_peers = ts.num_peers;
    s.checking = is_checking(ts.state);
    s.finished = ts.is_finished && !s.checking && !ts.errc;
    if (ts.errc) {
        s.error = ts.errc.message();
        if (ts.error_file >= lt::file_index_t{0} && ts.error_file < t.ti->files().end_file()) {
            s.error += " (" + t.ti->files().file_path(ts.error_file) + ")";
        }
    }
    return s;
}

// ---- TorrentEvents ---------------------------------------------------------------------------

TorrentEvents::TorrentEvents(Torrents& torrents, const PeerOrigins& origins,
                             const Callbacks& callbacks, std::function<void(Torrent&)> on_finishing)
    : torrents_(torrents),
      origins_(origins),
      callbacks_(callbacks),
      on_finishing_(std::move(on_finishing)) {}

bool TorrentEvents::handle(const lt::alert& alert) {
    const lt::alert* p = &alert;
    if (auto* a = lt::alert_cast<lt::block_finished_alert>(p)) {
        on_block(*a);
    } else if (auto* a = lt::alert_cast<lt::piece_finished_alert>(p)) {
        on_piece_finished(*a);
    } else if (auto* a = lt::alert_cast<lt::hash_failed_alert>(p)) {
        on_hash_failed(*a);
    } else if (auto* a = lt::alert_cast<lt::state_update_alert>(p)) {
        on_state_update(*a);
    } else if (auto* a = lt::alert_cast<lt::torrent_finished_alert>(p)) {
        if (const auto* id = torrents_.id_of(a->handle)) notify_finished(std::string(*id));
    } else if (auto* a = lt::alert_cast<lt::state_changed_alert>(p)) {
        if (a->state == lt::torrent_status::finished || a->state == lt::torrent_status::seeding) {
            if (const auto* id = torrents_.id_of(a->handle)) check_finished(std::string(*id));
        }
    } else if (auto* a = lt::alert_cast<lt::torrent_checked_alert>(p)) {
        if (const auto* id = torrents_.id_of(a->handle)) on_checked(std::string(*id));
    } else if (auto* a = lt::alert_cast<lt::torrent_error_alert>(p)) {
        report_error(a->handle, a->message());
    } else if (auto* a = lt::alert_cast<lt::file_error_alert>(p)) {
        report_error(a->handle, a->message());
    } else {
        return false;
    }
    return true;
}

void TorrentEvents::notify_finished(const std::string& id) {
    auto* t = torrents_.find(id);
    if (!t || t->finished_notified) return;
    t->finished_notified = true;
    if (on_finishing_) on_finishing_(*t);
    if (callbacks_.on_finished) callbacks_.on_finished(id);
}

void TorrentEvents::check_finished(const std::string& id) {
    auto* t = torrents_.find(id);
    if (!t || t->finished_notified) return;
    const auto ts = t->handle.status();
    if (ts.is_finished && !is_checking(ts.state) && !ts.errc) notify_finished(id);
}

void TorrentEvents::on_checked(const std::string& id) {
    auto* t = torrents_.find(id);
    if (!t) return;
    if (t->seed) {
        // A seeder whose payload is missing or damaged would quietly start downloading it from
        // its own endpoints; say so.
        const auto ts = t->handle.status();
        if (!ts.is_finished && !ts.errc) {
            const auto percent = static_cast<int>(ts.progress * 100);
            report_error(t->handle, "seed data incomplete after check (" + std::to_string(percent) +
                                        "% present)");
            if (!torrents_.find(id)) return;  // the error callback removed it
        }
    }
    check_finished(id);
}

void TorrentEvents::on_block(const lt::block_finished_alert& a) {
    const auto* id = torrents_.id_of(a.handle);
    if (!id) return;
    Torrent* t = torrents_.find(*id);
    const lt::file_storage& files = t->ti->files();
    if (a.piece_index < lt::piece_index_t{0} || a.piece_index >= files.end_piece()) return;
    const std::int64_t offset = std::int64_t{a.block_index} * kBlockSize;
    const std::int64_t piece_size = files.piece_size(a.piece_index);
    if (offset < 0 || offset >= piece_size) return;
    const int size = static_cast<int>(std::min<std::int64_t>(kBlockSize, piece_size - offset));
    // Pad bytes (v2 aligns every file to a piece) are not payload.
    std::uint64_t payload = 0;
    for (const auto& slice : files.map_block(a.piece_index, offset, size)) {
        if (!(files.file_flags(slice.file_index) & lt::file_storage::flag_pad_file)) {
            payload += static_cast<std::uint64_t>(slice.size);
        }
    }
    const lt::tcp::endpoint ep = a.endpoint;
    PendingBlock& b = t->pending[static_cast<int>(a.piece_index)][a.block_index];
    b.source = origins_.classify(ep.address());
    b.bytes = payload;
    b.peer = endpoint_string(ep);
}

// Bytes count only once their piece passed the hash check, so a corrupt piece that is fetched
// again is not counted twice.
void TorrentEvents::on_piece_finished(const lt::piece_finished_alert& a) {
    const auto* id = torrents_.id_of(a.handle);
    if (!id) return;
    Torrent* t = torrents_.find(*id);
    if (auto it = t->pending.find(static_cast<int>(a.piece_index)); it != t->pending.end()) {
        for (const auto& [block, b] : it->second) {
            (b.source == Source::seeder ? t->bytes_from_seeder : t->bytes_from_peers) += b.bytes;
            if (b.source == Source::outside_peer) t->bytes_from_outside_peers += b.bytes;
        }
        t->pending.erase(it);
    }
    if (callbacks_.on_piece) callbacks_.on_piece(*id);
}

void TorrentEvents::on_hash_failed(const lt::hash_failed_alert& a) {
    const auto* idp = torrents_.id_of(a.handle);
    if (!idp) return;
    const std::string id = *idp;
    Torrent* t = torrents_.find(id);
    std::vector<std::string> from;
    if (auto it = t->pending.find(static_cast<int>(a.piece_index)); it != t->pending.end()) {
        std::set<std::string> peers;
        for (const auto& [block, b] : it->second) peers.insert(b.peer);
        from.assign(peers.begin(), peers.end());
        t->pending.erase(it);
    }
    spdlog::warn("swarm {}: piece {} failed its hash check", id, static_cast<int>(a.piece_index));
    if (callbacks_.on_hash_fail) callbacks_.on_hash_fail(id, from);
}

void TorrentEvents::on_state_update(const lt::state_update_alert& a) {
    std::vector<Status> changed;
    changed.reserve(a.status.size());
    for (const lt::torrent_status& ts : a.status) {
        // A torrent removed after the request was posted is no longer ours to report.
        const auto* id = torrents_.id_of(ts.handle);
        if (!id) continue;
        changed.push_back(to_status(*id, *torrents_.find(*id), ts));
    }
    if (!changed.empty() && callbacks_.on_progress) callbacks_.on_progress(changed);
}

void TorrentEvents::report_error(const lt::torrent_handle& h, const std::string& message) {
    const auto* idp = torrents_.id_of(h);
    if (!idp) return;
    const std::string id = *idp;
    spdlog::warn("swarm {}: {}", id, message);
    if (callbacks_.on_error) callbacks_.on_error(id, message);
}

}  // namespace patchswarm::io::swarm::detail
