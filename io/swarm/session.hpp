// The libtorrent session behind project types: settings, peer classes, adding and removing
// torrents, resume data, the SSL identity. libtorrent stays in session.cpp; the events a
// session delivers are in alerts.hpp, the .torrent files it takes in torrent_file.hpp.
//
// Threading: construct, call and destroy a Session on the io_context thread only. libtorrent's
// alerts are pumped onto that io_context (alerts.hpp), and the callbacks run there.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "io/swarm/alerts.hpp"
#include "io/swarm/torrent_file.hpp"

namespace boost::asio {
class io_context;
}

namespace patchswarm::io::swarm {

// A libtorrent peer class over address ranges. libtorrent's default filter puts every private
// address in its "local" class, which rate limits skip (../shared/FACTS.md); a class listed here
// replaces that for its ranges, so its limits hold on a LAN too. Peers in a class stay in the
// global class as well, so `upload_rate_limit` / `download_rate_limit` still cap everything.
struct PeerClassSpec {
    std::string name;                // label, for logs
    std::vector<std::string> cidrs;  // "10.1.0.0/16", "::/0" (core/sites.hpp, parse_cidr)
    int upload_limit = 0;            // bytes/s, 0 = none
    int download_limit = 0;          // bytes/s, 0 = none
    // Peers of this class are unchoked without taking an unchoke slot, as libtorrent does for
    // its "local" class (what LAN peers had before a class replaced it).
    bool always_unchoke = false;
};

// At most this many PeerClassSpecs: a peer-class filter has 32 bits, libtorrent uses 3.
inline constexpr std::size_t kMaxPeerClasses = 29;

struct Settings {
    std::string listen;                // "127.0.0.2:6881" (port 0: any free port)
    std::filesystem::path resume_dir;  // where resume data is kept (created if missing)
    bool enable_lsd = true;            // BEP 14 local service discovery
    int min_reconnect_time_s = 2;      // libtorrent default 60 is far too slow for a LAN swarm
    // Addresses whose bytes count as "from the seeder" (HQ) rather than "from peers".
    std::vector<std::string> seeder_addresses;
    int upload_rate_limit = 0;    // bytes/s, 0 = unlimited
    int download_rate_limit = 0;  // bytes/s, 0 = unlimited
    // Applied in order; where ranges overlap, the later class wins. Errc::invalid_argument from
    // Session::create for a bad CIDR or more than kMaxPeerClasses classes.
    std::vector<PeerClassSpec> peer_classes;
    // CIDRs of this endpoint's own site, for byte accounting: payload from a peer outside them,
    // or from seeder_addresses, counts as from outside the site. Empty: every peer but the
    // seeder is inside.
    std::vector<std::string> site_ranges;
    // ut_pex, off by default: the tracker decides who meets whom. A gateway would pass the
    // seeder's address on to its whole site, and the seeder, connected to every site's
    // gateways, would hand their addresses across sites.
    bool peer_exchange = false;
    // SSL torrents: the TLS listen address ("127.0.0.2:6882", port 0: any free port; empty: no
    // SSL listen socket), and this session's certificate and private key (PEM), issued by the
    // fleet CA, presented for every SSL torrent. Without a certificate an SSL torrent gets no
    // peers (libtorrent refuses plain connections for it).
    std::string ssl_listen;
    std::string ssl_certificate;
    std::string ssl_private_key;
};

struct AddParams {
    std::string id;                      // our release id; the key for every other call
    std::vector<std::uint8_t> torrent;   // .torrent bytes (already checked against manifest)
    std::filesystem::path save_path;     // payload lands at save_path/<name>
    std::vector<std::string> trackers;   // announce URLs (the torrent's own are ignored)
    std::vector<std::string> web_seeds;  // BEP 19 URLs added right away
    std::vector<std::string> peers;      // "ip:port" to connect to directly
    bool seed = false;                   // we already have the data (seeder): check it, then seed
};

class Session {
  public:
    // Errc::network if the listen address (or the SSL listen address) cannot be used.
    [[nodiscard]] static Result<std::unique_ptr<Session>> create(boost::asio::io_context& io,
                                                                 Settings settings,
                                                                 Callbacks callbacks);
    virtual ~Session() = default;

    // Adds a torrent (resuming from resume_dir/<id>.resume when present). Errc::already_exists
    // if the id is present.
    [[nodiscard]] virtual Result<void> add(AddParams params) = 0;
    virtual void remove(const std::string& id) = 0;
    virtual void force_recheck(const std::string& id) = 0;
    // Adds a BEP 19 web seed, or re-adds it: libtorrent drops a web seed for good after an HTTP
    // error such as the seeder's 403 to a peer that is not its site's gateway, and the answer
    // may be different later (the site stalled).
    virtual void add_web_seed(const std::string& id, const std::string& url) = 0;
    // Drops a web seed added before (its credentials were replaced, say).
    virtual void remove_web_seed(const std::string& id, const std::string& url) = 0;
    // Connects to one more peer ("ip:port", "[v6]:port") for a torrent already added; ignored for
    // an unknown id or an unparsable endpoint. Not pure so that test fakes need not implement it.
    virtual void connect_peer(const std::string& id, const std::string& endpoint) {
        (void)id;
        (void)endpoint;
    }
    // The status of one torrent (std::nullopt for an unknown id), or of all. Each asks
    // libtorrent's network thread and waits for the answer; prefer request_progress.
    virtual std::optional<Status> status(const std::string& id) const = 0;
    virtual std::vector<Status> status_all() const = 0;
    // Asks for the status of every torrent that changed since the previous request
    // (libtorrent's post_torrent_updates). Returns at once; the answer arrives later on the
    // io_context as one Callbacks::on_progress call, with the same Status as status(). Call it
    // on a timer (once a second, say). Not pure so that test fakes need not implement it.
    virtual void request_progress() {}
    // Asks libtorrent for resume data of every torrent that needs it; written asynchronously
    // (atomically) to resume_dir as it arrives.
    virtual void save_resume_data() = 0;
    // Blocks (running the alert loop itself) until resume data is written or `timeout` passed;
    // for shutdown.
    virtual void save_resume_data_and_wait(std::chrono::milliseconds timeout) = 0;
    virtual std::uint16_t listen_port() const = 0;
    // The bound SSL listen port, 0 without one.
    virtual std::uint16_t ssl_listen_port() const { return 0; }
    // Replaces the TLS certificate and key (a renewal) for every SSL torrent, now and later;
    // connections already open keep the old one. Needs a session created with ssl_listen.
    virtual void set_ssl_identity(const std::string& cert_pem, const std::string& key_pem) = 0;
};

}  // namespace patchswarm::io::swarm
