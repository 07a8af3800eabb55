// The seeder's HTTP tracker (BEP 3 with compact peer lists, BEP 23, and BEP 7 "peers6"), as pure
// logic: parse an announce, keep the peer table, build and bencode the reply. No sockets and no
// clock: the caller passes `now`, so expiry is testable without sleeping.
//
// The tracker only answers for the repository's own torrents. Those are BitTorrent v2-only, and
// a v2 torrent is announced under the first 20 bytes of its SHA-256 info-hash (BEP 52).
//
// Sites (core/sites.hpp): every peer belongs to the site its address classifies into, and is
// answered with peers of that site only, never another site's endpoints: serving another branch
// costs two WAN links. The seeder's own address goes only to the site's gateways (the first
// `gateways` peers of the site seen, while they stay; one that leaves or expires is replaced by
// the next peer to announce) and, as a fallback, to every peer of a site that has made no
// progress for `site_stall`. Progress, per torrent and site: a peer announcing less `left` than
// it did before (the site's sum of `left` decreasing, not counting peers that come and go), or a
// peer completing. The timer starts when the site gets its first downloading peer.
//
// Threading: one PeerTable per program, used from the io_context thread only.
#pragma once

#include <array>
#include <chrono>
#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "core/sites.hpp"

namespace patchswarm::seeder::tracker {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

// Downloaders announce every 30 s, so the table follows a site's progress (stall fallback) and
// new peers meet quickly; seeds (left=0) every 5 minutes, so a fleet that keeps seeding its
// releases costs HQ little. An entry lives two of its own intervals. (libtorrent floors every
// tracker interval at its min_announce_interval, 5 minutes by default: swarm.cpp lowers that to
// kMinInterval, or downloaders' entries would expire between their announces.)
inline constexpr std::chrono::seconds kInterval{30};
inline constexpr std::chrono::seconds kSeedInterval{300};
inline constexpr std::chrono::seconds kMinInterval{15};
inline constexpr int kMaxNumwant = 50;
// Peers per torrent the table holds (a fleet of 20,000 on one release, with room): ~300 bytes each.
inline constexpr std::size_t kMaxPeersPerTorrent = 100'000;
inline constexpr std::size_t kMaxQueryBytes = 4096;
// One gateway per site by default: two gateways fetch overlapping pieces from HQ (each one's
// in-flight requests are invisible to the other), which measured 1.27-1.48 payload copies per
// site WAN link in the 4x10 lab against 1.02-1.03 with one (docs/BENCHMARKS.md). A gateway that
// leaves is replaced at the next announce, and a stalled site falls back to everyone.
inline constexpr std::size_t kDefaultGateways = 1;
inline constexpr std::chrono::seconds kDefaultSiteStall{30};

// An IPv4 or IPv6 address with a port. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are stored
// as IPv4, so one peer has one form whichever socket family it came in on.
struct PeerAddress {
    bool v6 = false;
    std::array<std::uint8_t, 16> ip{};  // first 4 bytes used for IPv4
    std::uint16_t port = 0;

    auto operator<=>(const PeerAddress&) const = default;
};

// "10.0.0.1", "::1", "::ffff:10.0.0.1" plus a port; nullopt if not an IP address.
std::optional<PeerAddress> make_address(std::string_view ip, std::uint16_t port);
// "10.0.0.1:6881" or "[::1]:6881"; nullopt if malformed, or port 0 unless allow_port_zero.
std::optional<PeerAddress> parse_host_port(std::string_view text, bool allow_port_zero = false);
std::string ip_to_string(const PeerAddress& address);
// true for 0.0.0.0 and ::, which a peer cannot connect to.
bool is_unspecified(const PeerAddress& address);
// The address without its port, for site classification.
core::IpAddress ip_of(const PeerAddress& address);

enum class Event { none, started, completed, stopped };

struct Announce {
    std::string info_hash;  // 20 raw bytes
    std::string peer_id;    // 20 raw bytes
    PeerAddress address;    // the request's remote address with the announced port
    Event event = Event::none;
    int numwant = kMaxNumwant;  // already capped at kMaxNumwant
    bool compact = true;
    bool seed = false;                  // left=0
    std::optional<std::uint64_t> left;  // bytes still wanted, when the peer said
};

// Parses the raw, still percent-encoded query string of GET /announce (binary info_hash and
// peer_id must be decoded per parameter, never as a whole). The peer's address is
// `remote_address` (the "ip" parameter is ignored: a peer must not place others in the swarm).
// Errc::malformed / Errc::too_large with a message fit for a "failure reason".
[[nodiscard]] Result<Announce> parse_announce(std::string_view raw_query,
                                              std::string_view remote_address);

// The 20-byte key under which a v2-only torrent is announced: the first 20 bytes of its
// SHA-256 info-hash. Errc::malformed unless `infohash_v2_hex` is 64 hex characters.
[[nodiscard]] Result<std::string> announce_hash(std::string_view infohash_v2_hex);

struct Peer {
    PeerAddress address;
    std::string peer_id;  // empty for the seeder's own entry
};

struct Reply {
    std::chrono::seconds interval = kInterval;
    std::chrono::seconds min_interval = kMinInterval;
    std::size_t complete = 0;    // seeds of the asker's site, the seeder included
    std::size_t incomplete = 0;  // peers of the asker's site still downloading
    std::vector<Peer> peers;     // the seeder's own address first (if given), then site peers
    // Why the reply is what it is, for the log (not sent).
    std::string site;
    bool gateway = false;       // the asker is one of its site's gateways
    bool site_stalled = false;  // its site has made no progress for site_stall
};

struct TableOptions {
    std::chrono::seconds interval = kInterval;  // a peer expires after 2 intervals of silence
    std::size_t max_peers_per_torrent = kMaxPeersPerTorrent;
    std::size_t gateways = kDefaultGateways;              // per torrent and site
    std::chrono::seconds site_stall = kDefaultSiteStall;  // no progress this long: fallback
    std::chrono::seconds seed_interval = kSeedInterval;   // `interval` for seeds (left=0)
};

// Why the seeder may or may not serve an address (its web seed answers by this).
enum class SeederAccess {
    gateway,        // a gateway of its site
    stalled,        // its site has made no progress for site_stall
    unknown_slots,  // never announced, and its site has fewer gateways than allowed
    refused,        // a non-gateway peer of a site that is progressing, or an unknown address of
                    // a site whose gateways are all in place
};
inline bool allowed(SeederAccess a) {
    return a != SeederAccess::refused;
}

class PeerTable {
  public:
    // `seeder` is the address of the seeder's own BitTorrent session, handed to gateways and to
    // stalled sites; `sites` classifies peers (default: each /24 or /64 is its own site).
    explicit PeerTable(PeerAddress seeder, TableOptions options = {}, core::SiteMap sites = {});

    // Replaces the set of torrents we answer for (announce hash → release id). Peers of a
    // torrent that stays are kept; peers of a torrent that goes are dropped.
    void set_torrents(std::map<std::string, std::string> torrents);

    // Records the announce and returns the reply: the seeder's address if the peer is a gateway
    // or its site is stalled, then up to numwant (less one for the seeder) other live peers of
    // the same site (never the announcing peer itself, never another site's), rotating through
    // the site so every peer is handed out in turn. A "stopped" announce removes the peer and
    // gets no peers. Errc::not_found for a torrent that is not ours, Errc::too_large when the
    // torrent's table is full.
    [[nodiscard]] Result<Reply> announce(const Announce& announce, TimePoint now);

    // May `address` (its port is ignored) fetch release `release_id` from the seeder itself
    // (the web seed)? The same decision as the tracker's: gateways and peers of a stalled site
    // may; an address the tracker has never seen for this torrent may if its site is stalled or
    // has fewer gateways than allowed. A release the tracker does not know has no peers, so
    // every address is an unknown one of an empty site.
    SeederAccess seeder_access(std::string_view release_id, const PeerAddress& address,
                               TimePoint now) const;

    // Drops peers that have not announced for two intervals (and gateways with them).
    void expire(TimePoint now);

    const PeerAddress& seeder() const { return seeder_; }
    std::size_t peer_count(std::string_view info_hash) const;
    // Release id for an announce hash, or nullptr.
    const std::string* release_id(std::string_view info_hash) const;
    // The site an address belongs to.
    std::string site_of(const PeerAddress& address) const;
    // The current gateways of a site for a torrent, in the order they were chosen.
    std::vector<PeerAddress> gateways(std::string_view info_hash, std::string_view site) const;
    const core::SiteMap& sites() const { return sites_; }

  private:
    static constexpr std::chrono::seconds kSweepEvery{1};
    struct Entry {
        std::string peer_id;
        TimePoint expires;
        bool seed = false;
        std::optional<std::uint64_t> left;
        std::string site;
    };
    struct SiteState {
        std::vector<PeerAddress> gateways;  // live peers, in the order they were chosen
        TimePoint last_progress{};
        std::size_t cursor = 0;  // rotation offset into the site's peers
        // The site's peers (keys of Torrent::peers): an announce looks at its own site only,
        // so its cost follows the site's size, not the torrent's (20,000 peers over 200 sites).
        std::set<PeerAddress> members;
    };
    struct Torrent {
        std::string id;
        std::map<PeerAddress, Entry> peers;
        std::map<std::string, SiteState, std::less<>> sites;
        TimePoint next_sweep{};  // announces sweep at most once per kSweepEvery
    };

    static bool has_downloader(const Torrent& torrent, std::string_view site, TimePoint now);
    std::size_t live_gateways(const Torrent& torrent, std::string_view site, TimePoint now) const;
    [[nodiscard]] Result<void> record(Torrent& torrent, const Announce& announce,
                                      const std::string& site, TimePoint now);
    // Removes expired peers, their gateway slots and sites left without peers: a pass over the
    // whole torrent, so an announce runs it at most once per kSweepEvery (`force`: now).
    void sweep(Torrent& torrent, TimePoint now, bool force = false);
    // Drops one peer, its site membership and gateway slot (and the site when left empty).
    static void drop(Torrent& torrent, std::map<PeerAddress, Entry>::iterator peer);
    static bool is_gateway(const Torrent& torrent, std::string_view site,
                           const PeerAddress& address);
    bool is_stalled(const Torrent& torrent, std::string_view site, TimePoint now) const;
    Reply make_reply(Torrent& torrent, const Announce& announce, const std::string& site,
                     TimePoint now);

    PeerAddress seeder_;
    TableOptions options_;
    core::SiteMap sites_;
    std::map<std::string, Torrent, std::less<>> torrents_;
};

// Bencoded replies. Compact: "peers" (6 bytes per IPv4 peer) and "peers6" (18 bytes per IPv6
// peer); otherwise a list of {"ip","peer id","port"} dictionaries.
std::string bencode_reply(const Reply& reply, bool compact);
std::string bencode_failure(std::string_view reason);

}  // namespace patchswarm::seeder::tracker
