// The events a swarm Session delivers: libtorrent's alerts, pumped onto the program's
// io_context (set_alert_notify -> post -> pop_alerts, see alerts.cpp), become these small
// project types. No libtorrent type appears here.
//
// Threading: every callback runs on the io_context thread that runs the Session's alert pump
// (or inside Session::save_resume_data_and_wait on the thread calling it). A callback may call
// any Session method, but must not destroy the Session.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace patchswarm::io::swarm {

// Where a torrent is in its life, libtorrent's torrent_status::state_t folded into what our
// callers tell apart.
enum class TorrentState {
    checking,     // checking files or resume data
    downloading,  // wanted bytes missing
    finished,     // every wanted byte present (a selective download)
    seeding,      // every byte present
};

// One torrent's progress, in Session::status and in Callbacks::on_progress alike.
struct Status {
    std::string id;
    TorrentState state = TorrentState::checking;
    double progress = 0;  // 0..1 of wanted bytes
    std::uint64_t total_wanted = 0;
    std::uint64_t total_done = 0;
    std::uint64_t bytes_from_peers = 0;   // payload bytes received from other endpoints
    std::uint64_t bytes_from_seeder = 0;  // payload bytes received from seeder_addresses
    // The same bytes split by site: from peers inside site_ranges, and from outside the site
    // (peers outside site_ranges plus the seeder). lan + outside = peers + seeder.
    std::uint64_t bytes_from_lan = 0;
    std::uint64_t bytes_from_outside_site = 0;
    std::uint64_t total_uploaded = 0;
    int download_rate = 0;  // bytes/s
    int upload_rate = 0;
    int num_peers = 0;
    bool finished = false;  // every wanted byte is on disk and hash-checked
    bool checking = false;
    std::string error;  // libtorrent error for this torrent, if any
};

// Each member may be empty (that event is then dropped).
struct Callbacks {
    std::function<void(const std::string& id)> on_finished;  // all pieces downloaded + checked
    std::function<void(const std::string& id, const std::string& message)> on_error;
    // A piece failed its hash check; `from` lists the peers that sent parts of it.
    std::function<void(const std::string& id, const std::vector<std::string>& from)> on_hash_fail;
    // The answer to Session::request_progress (libtorrent's state_update_alert): the status of
    // every torrent whose status changed since the previous request, in no particular order. A
    // torrent missing from `changed` has not changed; nothing changed, no call.
    std::function<void(const std::vector<Status>& changed)> on_progress;
    // A piece of torrent `id` arrived and passed its hash check: its progress moved. Comes once
    // per piece (often many a second); a caller that wants the counters coalesces these into
    // one request_progress.
    std::function<void(const std::string& id)> on_piece;
};

}  // namespace patchswarm::io::swarm
