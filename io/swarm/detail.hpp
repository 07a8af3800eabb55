// Private to io/swarm/*.cpp: the libtorrent-typed parts that torrent_file.cpp, alerts.cpp and
// session.cpp share. Never include it from outside io/swarm: it pulls in libtorrent headers
// (~10 s per translation unit here), which the public headers keep away from their callers.
//
// Threading: everything here lives on the Session's io_context thread, except the alert
// notify that AlertPump installs (libtorrent's thread; it only posts).
#pragma once

#include <atomic>
#include <boost/asio/ip/address.hpp>
#include <cstdint>
#include <functional>
#include <libtorrent/fwd.hpp>
#include <libtorrent/torrent_handle.hpp>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/error.hpp"
#include "core/sites.hpp"
#include "io/swarm/alerts.hpp"
#include "io/swarm/torrent_file.hpp"

namespace boost::asio {
class io_context;
}

namespace patchswarm::io::swarm::detail {

// Bounds for untrusted .torrent files, also applied to what peers offer (session.cpp).
inline constexpr int kMaxPieces = 1 << 21;
inline constexpr int kMaxDecodeTokens = 3'000'000;

// ---- torrent_file.cpp ------------------------------------------------------------------------

// The load limits for every untrusted torrent or resume file.
lt::load_torrent_limits torrent_limits();

// Decodes and parses an untrusted .torrent under torrent_limits(). Errc::malformed,
// Errc::too_large.
[[nodiscard]] Result<std::shared_ptr<const lt::torrent_info>> parse_torrent(
    const std::vector<std::uint8_t>& bytes);

// Our checks on top of libtorrent's (v2 info-hash, safe relative paths, no symlinks, no
// duplicates) and the project summary. Errc::malformed, Errc::unsafe_path.
[[nodiscard]] Result<TorrentSummary> summarize(const lt::torrent_info& ti,
                                               const std::vector<std::uint8_t>& bytes);

// ---- alerts.cpp ------------------------------------------------------------------------------

// Moves libtorrent's alerts onto the io_context: libtorrent calls the notify on its own thread
// when its queue turns non-empty; the notify only posts a drain, and the drain pops the whole
// queue on the io_context thread and hands each alert to `handler`.
class AlertPump {
  public:
    using Handler = std::function<void(const lt::alert&)>;

    // `label` names the session in trace logs (every alert is logged at trace level).
    AlertPump(boost::asio::io_context& io, std::string label, Handler handler);
    ~AlertPump();
    AlertPump(const AlertPump&) = delete;
    AlertPump& operator=(const AlertPump&) = delete;

    // Installs the notify on `session` and drains once (alerts posted before the notify was
    // installed would otherwise hold back every later one). `session` must stay alive until
    // stop() or the destructor.
    void start(lt::session& session);
    // Uninstalls the notify; no drain and no post() queued before runs after it. Call before
    // the session is destroyed.
    void stop();
    // Pops and handles every queued alert now. Does nothing when called from inside a handler:
    // pop_alerts frees the batch being handled.
    void drain();
    bool draining() const { return draining_; }
    // Runs `fn` on the io_context later, unless stop() was called by then.
    void post(std::function<void()> fn);

  private:
    // What a queued handler may look at after the pump is gone.
    struct Token {
        std::atomic<bool> alive{true};
    };

    boost::asio::io_context& io_;
    std::string label_;
    Handler handler_;
    lt::session* session_ = nullptr;
    std::shared_ptr<Token> token_ = std::make_shared<Token>();
    bool draining_ = false;
};

// Who sent a block.
enum class Source { seeder, lan_peer, outside_peer };

// Where a peer's bytes count (Settings::seeder_addresses, Settings::site_ranges).
struct PeerOrigins {
    std::set<boost::asio::ip::address> seeders;
    std::vector<core::Cidr> site;  // empty: every peer but the seeder is inside the site
    Source classify(const boost::asio::ip::address& address) const;
};

// One block's bytes, held until its piece passes the hash check.
struct PendingBlock {
    Source source = Source::lan_peer;
    std::uint64_t bytes = 0;
    std::string peer;  // "ip:port"
};

// One torrent of a session, under our release id.
struct Torrent {
    lt::torrent_handle handle;
    std::shared_ptr<const lt::torrent_info> ti;
    bool seed = false;  // added as a seed: the check must find every piece
    bool finished_notified = false;
    int resume_pending = 0;  // save_resume_data requests not answered yet
    std::uint64_t bytes_from_peers = 0;
    std::uint64_t bytes_from_seeder = 0;
    std::uint64_t bytes_from_outside_peers = 0;          // part of bytes_from_peers
    std::map<int, std::map<int, PendingBlock>> pending;  // piece -> block -> source
};

// The session's torrents by id and by handle. Owned by the session.
class Torrents {
  public:
    Torrent* find(const std::string& id) {
        auto it = by_id_.find(id);
        return it == by_id_.end() ? nullptr : &it->second;
    }
    const Torrent* find(const std::string& id) const {
        auto it = by_id_.find(id);
        return it == by_id_.end() ? nullptr : &it->second;
    }
    const std::string* id_of(const lt::torrent_handle& h) const {
        auto it = ids_.find(h);
        return it == ids_.end() ? nullptr : &it->second;
    }
    void insert(const std::string& id, Torrent t) {
        ids_[t.handle] = id;
        by_id_.insert_or_assign(id, std::move(t));
    }
    void erase(const std::string& id) {
        if (auto it = by_id_.find(id); it != by_id_.end()) {
            ids_.erase(it->second.handle);
            by_id_.erase(it);
        }
    }
    std::map<std::string, Torrent>& all() { return by_id_; }
    const std::map<std::string, Torrent>& all() const { return by_id_; }

  private:
    std::map<std::string, Torrent> by_id_;
    std::unordered_map<lt::torrent_handle, std::string> ids_;
};

// The project status of one torrent from a libtorrent status and our byte attribution.
Status to_status(const std::string& id, const Torrent& t, const lt::torrent_status& ts);

// Turns the alerts about torrents into Callbacks: finished, error, hash failure, progress, and
// the byte attribution behind Status (bytes by source, counted once their piece passed its hash
// check). `torrents`, `origins` and `callbacks` belong to the session and outlive this object;
// `on_finishing` runs just before Callbacks::on_finished (the session saves resume data there).
class TorrentEvents {
  public:
    TorrentEvents(Torrents& torrents, const PeerOrigins& origins, const Callbacks& callbacks,
                  std::function<void(Torrent&)> on_finishing);

    // Handles `alert` if it is one of the torrent alerts above; false otherwise.
    bool handle(const lt::alert& alert);
    // Reports the torrent finished if libtorrent says so now (once per finish).
    void check_finished(const std::string& id);
    // Logs and reports an error for a torrent of ours (ignored for an unknown handle).
    void report_error(const lt::torrent_handle& h, const std::string& message);

  private:
    void notify_finished(const std::string& id);
    void on_checked(const std::string& id);
    void on_block(const lt::block_finished_alert& a);
    void on_piece_finished(const lt::piece_finished_alert& a);
    void on_hash_failed(const lt::hash_failed_alert& a);
    void on_state_update(const lt::state_update_alert& a);

    Torrents& torrents_;
    const PeerOrigins& origins_;
    const Callbacks& callbacks_;
    std::function<void(Torrent&)> on_finishing_;
};

}  // namespace patchswarm::io::swarm::detail
