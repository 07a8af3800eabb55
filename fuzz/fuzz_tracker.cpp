// libFuzzer target for the tracker request parser (seeder::tracker::parse_announce) and the
// peer table it feeds. Input: lines of "<remote address> <raw query string>" (without "?"),
// replayed as announces 13 s apart against one PeerTable that knows two torrents (see
// fuzz/README.md for the info-hashes). Beyond "no crash":
// - an accepted announce has 20-byte info_hash and peer_id, a non-zero port, numwant <= 50,
//   and the request's own address (the "ip" parameter never counts);
// - a reply never holds more than numwant peers, never the asker, never a peer of another site,
//   never a peer twice; the seeder's address only first and only for a gateway or a stalled
//   site; a torrent's table never exceeds its bound; the bencoded reply is well-formed;
// - textual addresses round-trip: ip_to_string(make_address(x)) parses to the same address.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/sites.hpp"
#include "fuzz/fuzz_support.hpp"
#include "seeder/tracker.hpp"

namespace patchswarm::fuzz {

namespace tracker_detail {

namespace tr = seeder::tracker;

constexpr std::size_t kMaxLines = 64;
constexpr std::size_t kMaxPeers = 8;
// The v2 info-hashes of the two torrents the table answers for; announces use the first 20
// bytes (BEP 52), percent-encoded: %01%23%45%67%89%ab%cd%ef%01%23%45%67%89%ab%cd%ef%01%23%45%67.
constexpr std::string_view kInfohashA =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
constexpr std::string_view kInfohashB =
    "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

// The position just past one bencoded value starting at `pos`, or npos if it is not one.
std::size_t skip_bencoded(std::string_view s, std::size_t pos, int depth) {
    constexpr auto npos = std::string_view::npos;
    if (pos >= s.size() || depth > 8) return npos;
    const char c = s[pos];
    if (c == 'i') {
        std::size_t i = pos + 1;
        if (i < s.size() && s[i] == '-') ++i;
        const std::size_t digits = i;
        while (i < s.size() && is_digit(s[i])) ++i;
        if (i == digits || i >= s.size() || s[i] != 'e') return npos;
        return i + 1;
    }
    if (c == 'l' || c == 'd') {
        std::size_t i = pos + 1;
        bool at_key = true;
        while (i < s.size() && s[i] != 'e') {
            if (c == 'd' && at_key && !is_digit(s[i])) return npos;  // keys are strings
            i = skip_bencoded(s, i, depth + 1);
            if (i == npos) return npos;
            at_key = !at_key;
        }
        if (i >= s.size() || (c == 'd' && !at_key)) return npos;
        return i + 1;
    }
    if (!is_digit(c)) return npos;
    std::size_t i = pos;
    std::size_t length = 0;
    while (i < s.size() && is_digit(s[i])) {
        length = length * 10 + static_cast<std::size_t>(s[i] - '0');
        if (length > s.size()) return npos;
        ++i;
    }
    if (i >= s.size() || s[i] != ':' || s.size() - (i + 1) < length) return npos;
    return i + 1 + length;
}

bool is_bencoded(std::string_view s) {
    return skip_bencoded(s, 0, 0) == s.size();
}

tr::PeerTable make_table() {
    auto sites = core::SiteMap::parse({"hq=10.0.0.0/24", "branch=10.1.0.0/16,fd00::/8"});
    FUZZ_CHECK(sites.has_value());
    tr::TableOptions options;
    options.max_peers_per_torrent = kMaxPeers;
    tr::PeerTable table(*tr::make_address("10.0.0.1", 6881), options, std::move(*sites));
    table.set_torrents(
        {{*tr::announce_hash(kInfohashA), "R1"}, {*tr::announce_hash(kInfohashB), "R2"}});
    return table;
}

void check_address_text(std::string_view remote) {
    if (auto address = tr::make_address(remote, 1)) {
        auto again = tr::make_address(tr::ip_to_string(*address), 1);
        FUZZ_CHECK(again.has_value() && *again == *address);
    }
    if (auto hp = tr::parse_host_port(remote)) FUZZ_CHECK(hp->port != 0);
    (void)tr::parse_host_port(remote, /*allow_port_zero=*/true);
}

void check_announce(const tr::Announce& a, std::string_view remote) {
    FUZZ_CHECK(a.info_hash.size() == 20 && a.peer_id.size() == 20);
    FUZZ_CHECK(a.numwant >= 0 && a.numwant <= tr::kMaxNumwant);
    FUZZ_CHECK(a.address.port != 0);
    auto own = tr::make_address(remote, a.address.port);
    FUZZ_CHECK(own.has_value() && *own == a.address);
    FUZZ_CHECK(a.seed == (a.left.has_value() && *a.left == 0));
}

void check_reply(const tr::PeerTable& table, const tr::Announce& a, const tr::Reply& reply) {
    FUZZ_CHECK(reply.peers.size() <= static_cast<std::size_t>(a.numwant));
    FUZZ_CHECK(reply.complete >= 1);  // the seeder
    if (a.event == tr::Event::stopped) FUZZ_CHECK(reply.peers.empty());
    std::set<tr::PeerAddress> seen;
    for (std::size_t i = 0; i < reply.peers.size(); ++i) {
        const tr::PeerAddress& p = reply.peers[i].address;
        FUZZ_CHECK(seen.insert(p).second);
        if (p == table.seeder()) {
            FUZZ_CHECK(i == 0 && (reply.gateway || reply.site_stalled));
            continue;
        }
        FUZZ_CHECK(p != a.address);
        FUZZ_CHECK(table.site_of(p) == reply.site);
    }
    FUZZ_CHECK(table.peer_count(a.info_hash) <= kMaxPeers);
    FUZZ_CHECK(table.gateways(a.info_hash, reply.site).size() <= tr::kDefaultGateways);

    const std::string bencoded = tr::bencode_reply(reply, a.compact);
    FUZZ_CHECK(is_bencoded(bencoded));
}

}  // namespace tracker_detail

bool tracker_one(const std::uint8_t* data, std::size_t size) {
    using namespace tracker_detail;
    std::string_view input = as_text(data, size);
    tr::PeerTable table = make_table();
    bool accepted = false;
    tr::TimePoint now{};
    for (std::size_t line_no = 0; line_no < kMaxLines && !input.empty(); ++line_no) {
        const auto newline = input.find('\n');
        const std::string_view line = input.substr(0, newline);
        input = newline == std::string_view::npos ? std::string_view{} : input.substr(newline + 1);
        now += std::chrono::seconds(13);

        const auto space = line.find(' ');
        const std::string_view remote =
            space == std::string_view::npos ? line : line.substr(0, space);
        const std::string_view query =
            space == std::string_view::npos ? std::string_view{} : line.substr(space + 1);
        check_address_text(remote);

        auto announce = tr::parse_announce(query, remote);
        if (!announce) {
            const Errc code = announce.error().code;
            FUZZ_CHECK(code == Errc::malformed || code == Errc::too_large);
            FUZZ_CHECK(!tr::bencode_failure(announce.error().message).empty());
            continue;
        }
        accepted = true;
        check_announce(*announce, remote);
        auto reply = table.announce(*announce, now);
        if (!reply) {
            FUZZ_CHECK(reply.error().code == Errc::not_found ||
                       reply.error().code == Errc::too_large);
            continue;
        }
        check_reply(table, *announce, *reply);
        if (const std::string* id = table.release_id(announce->info_hash)) {
            (void)table.seeder_access(*id, announce->address, now);
        }
    }
    table.expire(now + std::chrono::hours(1));
    return accepted;
}

}  // namespace patchswarm::fuzz

PATCHSWARM_FUZZ_ENTRY(tracker_one)
