// The seeder's HTTP tracker (BEP 3 with compact peer lists, BEP 23, and BEP 7 "peers6"), as pure
// logic: parse an announce, keep the peer table, build and bencode the reply. No sockets and no
// clock: the caller passes `now`, so expiry is testable without sleeping.
//
// The tracker only answers for the repository's own torrents. Those are BitTorrent v2-only, and
// a v2 torrent is announced under the first 20 bytes of its SHA-256 info-hash (BEP 52).
//
// Threading: one PeerTable per program, used from the io_context thread only.
#pragma once

#include <array>
#include <chrono>
#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"

namespace patchswarm::seeder::tracker {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

inline constexpr std::chrono::seconds kInterval{30};
inline constexpr std::chrono::seconds kMinInterval{15};
inline constexpr int kMaxNumwant = 50;
inline constexpr std::size_t kMaxPeersPerTorrent = 10'000;
inline constexpr std::size_t kMaxQueryBytes = 4096;

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

enum class Event { none, started, completed, stopped };

struct Announce {
    std::string info_hash;  // 20 raw bytes
    std::string peer_id;    // 20 raw bytes
    PeerAddress address;    // the request's remote address with the announced port
    Event event = Event::none;
    int numwant = kMaxNumwant;  // already capped at kMaxNumwant
    bool compact = true;
    bool seed = false;  // left=0
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
    std::size_t complete = 0;    // seeds, the seeder included
    std::size_t incomplete = 0;  // peers still downloading
    std::vector<Peer> peers;     // the seeder's own address first, then other peers
};

struct TableOptions {
    std::chrono::seconds interval = kInterval;  // a peer expires after 2 intervals of silence
    std::size_t max_peers_per_torrent = kMaxPeersPerTorrent;
};

class PeerTable {
  public:
    // `seeder` is the address of the seeder's own BitTorrent session, handed to every peer.
    explicit PeerTable(PeerAddress seeder, TableOptions options = {});

    // Replaces the set of torrents we answer for (announce hash → release id). Peers of a
    // torrent that stays are kept; peers of a torrent that goes are dropped.
    void set_torrents(std::map<std::string, std::string> torrents);

    // Records the announce and returns the reply: the seeder's address, then up to numwant-1
    // other live peers of the torrent (never the announcing peer itself), rotating through the
    // table so every peer is handed out in turn. A "stopped" announce removes the peer and
    // gets no peers. Errc::not_found for a torrent that is not ours, Errc::too_large when the
    // torrent's table is full.
    [[nodiscard]] Result<Reply> announce(const Announce& announce, TimePoint now);

    // Drops peers that have not announced for two intervals.
    void expire(TimePoint now);

    const PeerAddress& seeder() const { return seeder_; }
    std::size_t peer_count(std::string_view info_hash) const;
    // Release id for an announce hash, or nullptr.
    const std::string* release_id(std::string_view info_hash) const;

  private:
    struct Entry {
        std::string peer_id;
        TimePoint expires;
        bool seed = false;
    };
    struct Torrent {
        std::string id;
        std::map<PeerAddress, Entry> peers;
        std::size_t cursor = 0;  // rotation offset into `peers`
    };

    Reply make_reply(Torrent& torrent, const Announce& announce) const;

    PeerAddress seeder_;
    TableOptions options_;
    std::map<std::string, Torrent, std::less<>> torrents_;
};

// Bencoded replies. Compact: "peers" (6 bytes per IPv4 peer) and "peers6" (18 bytes per IPv6
// peer); otherwise a list of {"ip","peer id","port"} dictionaries.
std::string bencode_reply(const Reply& reply, bool compact);
std::string bencode_failure(std::string_view reason);

}  // namespace patchswarm::seeder::tracker
