#include "seeder/tracker.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <set>

namespace patchswarm::seeder::tracker {

namespace {

constexpr std::size_t kMaxParams = 32;
constexpr std::size_t kHashBytes = 20;

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Strict RFC 3986 percent-decoding. '+' stays '+': in a binary info_hash it is the byte 0x2b,
// not a space, and clients escape a real space as %20.
std::optional<std::string> percent_decode(std::string_view in) {
    std::string out;
    out.reserve(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] != '%') {
            out.push_back(in[i]);
            continue;
        }
        if (i + 2 >= in.size()) return std::nullopt;
        const int hi = hex_value(in[i + 1]);
        const int lo = hex_value(in[i + 2]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
    }
    return out;
}

template <typename T>
std::optional<T> parse_number(std::string_view text) {
    T value{};
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    return value;
}

std::optional<Event> parse_event(std::string_view text) {
    if (text.empty() || text == "empty") return Event::none;
    if (text == "started") return Event::started;
    if (text == "completed") return Event::completed;
    if (text == "stopped") return Event::stopped;
    return std::nullopt;
}

// Applies one decoded key=value pair; unknown keys (uploaded, downloaded, key, ...) are ignored.
Result<void> apply_param(std::string_view key, std::string value, Announce& a,
                         std::optional<std::uint16_t>& port) {
    if (key == "info_hash") {
        if (value.size() != kHashBytes) return fail(Errc::malformed, "info_hash must be 20 bytes");
        a.info_hash = std::move(value);
    } else if (key == "peer_id") {
        if (value.size() != kHashBytes) return fail(Errc::malformed, "peer_id must be 20 bytes");
        a.peer_id = std::move(value);
    } else if (key == "port") {
        const auto p = parse_number<std::uint16_t>(value);
        if (!p || *p == 0) return fail(Errc::malformed, "port must be 1-65535");
        port = *p;
    } else if (key == "compact") {
        if (value != "0" && value != "1") return fail(Errc::malformed, "compact must be 0 or 1");
        a.compact = value == "1";
    } else if (key == "numwant") {
        const auto n = parse_number<std::uint32_t>(value);
        if (!n) return fail(Errc::malformed, "numwant must be a non-negative integer");
        a.numwant = static_cast<int>(std::min<std::uint32_t>(*n, kMaxNumwant));
    } else if (key == "event") {
        const auto event = parse_event(value);
        if (!event) return fail(Errc::malformed, "unknown event");
        a.event = *event;
    } else if (key == "left") {
        const auto left = parse_number<std::uint64_t>(value);
        if (!left) return fail(Errc::malformed, "left must be a non-negative integer");
        a.seed = *left == 0;
        a.left = *left;
    }
    return {};
}

void put_string(std::string& out, std::string_view s) {
    out += std::to_string(s.size());
    out += ':';
    out += s;
}

void put_int(std::string& out, std::int64_t v) {
    out += 'i';
    out += std::to_string(v);
    out += 'e';
}

void put_compact(std::string& out, const PeerAddress& a) {
    out.append(reinterpret_cast<const char*>(a.ip.data()), a.v6 ? 16 : 4);
    out += static_cast<char>(a.port >> 8);
    out += static_cast<char>(a.port & 0xff);
}

}  // namespace

// ---- addresses -------------------------------------------------------------------------------

std::optional<PeerAddress> make_address(std::string_view ip, std::uint16_t port) {
    if (ip.empty() || ip.size() >= INET6_ADDRSTRLEN) return std::nullopt;
    const std::string text(ip);  // inet_pton needs a NUL-terminated string
    PeerAddress a;
    a.port = port;
    if (::inet_pton(AF_INET, text.c_str(), a.ip.data()) == 1) return a;
    if (::inet_pton(AF_INET6, text.c_str(), a.ip.data()) != 1) return std::nullopt;
    static constexpr std::uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(a.ip.data(), kMappedPrefix, sizeof kMappedPrefix) == 0) {
        std::memmove(a.ip.data(), a.ip.data() + 12, 4);
        std::fill(a.ip.begin() + 4, a.ip.end(), 0);
        return a;
    }
    a.v6 = true;
    return a;
}

std::optional<PeerAddress> parse_host_port(std::string_view text, bool allow_port_zero) {
    std::string_view host;
    std::string_view port_text;
    if (text.starts_with('[')) {
        const auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            return std::nullopt;
        }
        host = text.substr(1, close - 1);
        port_text = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos) return std::nullopt;
        host = text.substr(0, colon);
        port_text = text.substr(colon + 1);
        if (host.find(':') != std::string_view::npos) return std::nullopt;  // IPv6 needs [ ]
    }
    const auto port = parse_number<std::uint16_t>(port_text);
    if (!port || (*port == 0 && !allow_port_zero)) return std::nullopt;
    return make_address(host, *port);
}

std::string ip_to_string(const PeerAddress& a) {
    char buf[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(a.v6 ? AF_INET6 : AF_INET, a.ip.data(), buf, sizeof buf);
    return buf;
}

core::IpAddress ip_of(const PeerAddress& a) {
    core::IpAddress ip;
    ip.v6 = a.v6;
    ip.bytes = a.ip;
    return ip;
}

bool is_unspecified(const PeerAddress& a) {
    const std::size_t n = a.v6 ? 16 : 4;
    return std::all_of(a.ip.begin(), a.ip.begin() + n, [](std::uint8_t b) { return b == 0; });
}

// ---- parsing ---------------------------------------------------------------------------------

Result<Announce> parse_announce(std::string_view raw_query, std::string_view remote_address) {
    if (raw_query.size() > kMaxQueryBytes) return fail(Errc::too_large, "query too long");
    Announce a;
    std::optional<std::uint16_t> port;
    std::size_t params = 0;
    while (!raw_query.empty()) {
        const auto amp = raw_query.find('&');
        const std::string_view pair = raw_query.substr(0, amp);
        raw_query = amp == std::string_view::npos ? std::string_view{} : raw_query.substr(amp + 1);
        if (pair.empty()) continue;
        if (++params > kMaxParams) return fail(Errc::too_large, "too many query parameters");
        const auto eq = pair.find('=');
        const auto key = percent_decode(pair.substr(0, eq));
        const auto value =
            percent_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1));
        if (!key || !value) return fail(Errc::malformed, "bad percent-encoding in query");
        if (auto ok = apply_param(*key, std::move(*value), a, port); !ok) {
            return std::unexpected(ok.error());
        }
    }
    if (a.info_hash.empty()) return fail(Errc::malformed, "missing info_hash");
    if (a.peer_id.empty()) return fail(Errc::malformed, "missing peer_id");
    if (!port) return fail(Errc::malformed, "missing port");
    const auto address = make_address(remote_address, *port);
    if (!address) return fail(Errc::malformed, "unusable peer address");
    a.address = *address;
    return a;
}

Result<std::string> announce_hash(std::string_view hex) {
    if (hex.size() != 64) return fail(Errc::malformed, "info-hash must be 64 hex characters");
    std::string out;
    for (std::size_t i = 0; i < 2 * kHashBytes; i += 2) {
        const int hi = hex_value(hex[i]);
        const int lo = hex_value(hex[i + 1]);
        if (hi < 0 || lo < 0) return fail(Errc::malformed, "info-hash is not hex");
        out.push_back(static_cast<char>(hi * 16 + lo));
    }
    for (std::size_t i = 2 * kHashBytes; i < hex.size(); ++i) {
        if (hex_value(hex[i]) < 0) return fail(Errc::malformed, "info-hash is not hex");
    }
    return out;
}

// ---- peer table ------------------------------------------------------------------------------

PeerTable::PeerTable(PeerAddress seeder, TableOptions options, core::SiteMap sites)
    : seeder_(seeder), options_(options), sites_(std::move(sites)) {}

void PeerTable::set_torrents(std::map<std::string, std::string> torrents) {
    std::map<std::string, Torrent, std::less<>> next;
    for (auto& [hash, id] : torrents) {
        Torrent torrent;
        if (auto it = torrents_.find(hash); it != torrents_.end() && it->second.id == id) {
            torrent = std::move(it->second);
        }
        torrent.id = std::move(id);
        next.emplace(hash, std::move(torrent));
    }
    torrents_ = std::move(next);
}

std::string PeerTable::site_of(const PeerAddress& address) const {
    return sites_.classify(ip_of(address));
}

bool PeerTable::has_downloader(const Torrent& torrent, std::string_view site, TimePoint now) {
    const auto it = torrent.sites.find(site);
    if (it == torrent.sites.end()) return false;
    return std::any_of(it->second.members.begin(), it->second.members.end(), [&](const auto& a) {
        const auto peer = torrent.peers.find(a);
        return peer != torrent.peers.end() && !peer->second.seed && peer->second.expires > now;
    });
}

bool PeerTable::is_gateway(const Torrent& torrent, std::string_view site,
                           const PeerAddress& address) {
    const auto it = torrent.sites.find(site);
    if (it == torrent.sites.end()) return false;
    const auto& g = it->second.gateways;
    return std::find(g.begin(), g.end(), address) != g.end();
}

std::size_t PeerTable::live_gateways(const Torrent& torrent, std::string_view site,
                                     TimePoint now) const {
    const auto it = torrent.sites.find(site);
    if (it == torrent.sites.end()) return 0;
    return static_cast<std::size_t>(
        std::count_if(it->second.gateways.begin(), it->second.gateways.end(), [&](const auto& g) {
            const auto peer = torrent.peers.find(g);
            return peer != torrent.peers.end() && peer->second.expires > now;
        }));
}

bool PeerTable::is_stalled(const Torrent& torrent, std::string_view site, TimePoint now) const {
    const auto it = torrent.sites.find(site);
    if (it == torrent.sites.end() || !has_downloader(torrent, site, now)) return false;
    return now - it->second.last_progress >= options_.site_stall;
}

void PeerTable::drop(Torrent& torrent, std::map<PeerAddress, Entry>::iterator peer) {
    const auto site = torrent.sites.find(peer->second.site);
    if (site != torrent.sites.end()) {
        site->second.members.erase(peer->first);
        std::erase(site->second.gateways, peer->first);
        if (site->second.members.empty()) torrent.sites.erase(site);
    }
    torrent.peers.erase(peer);
}

void PeerTable::sweep(Torrent& torrent, TimePoint now, bool force) {
    // Expiry is two announce intervals (minutes): a second late costs nothing, a pass over
    // 20,000 peers on every one of their announces would cost the network thread seconds.
    if (!force && now < torrent.next_sweep) return;
    torrent.next_sweep = now + kSweepEvery;
    for (auto it = torrent.peers.begin(); it != torrent.peers.end();) {
        const auto next = std::next(it);
        if (it->second.expires <= now) drop(torrent, it);
        it = next;
    }
}

Result<void> PeerTable::record(Torrent& torrent, const Announce& a, const std::string& site,
                               TimePoint now) {
    const bool had_downloader = has_downloader(torrent, site, now);
    // A peer restarting on the same address gets a new peer_id; the address is the identity.
    auto [entry, inserted] = torrent.peers.try_emplace(a.address);
    if (inserted && torrent.peers.size() > options_.max_peers_per_torrent) {
        torrent.peers.erase(entry);  // not a member of any site yet
        return fail(Errc::too_large, "tracker is full for this torrent");
    }
    Entry& e = entry->second;
    // (Plain values rather than a copied optional: GCC 12 warns about the latter here.)
    const bool had_left = !inserted && e.left.has_value();
    const std::uint64_t left_before = had_left ? *e.left : 0;
    e.peer_id = a.peer_id;
    e.expires = now + 2 * (a.seed ? options_.seed_interval : options_.interval);
    e.seed = a.seed;
    e.left = a.left;
    e.site = site;

    auto [state, new_site] = torrent.sites.try_emplace(site);
    SiteState& s = state->second;
    s.members.insert(a.address);
    // Progress is measured per peer so that peers joining or leaving do not move the figure.
    const bool progressed =
        a.event == Event::completed || (had_left && a.left && *a.left < left_before);
    // The stall timer starts when the site has someone downloading again.
    if (new_site || progressed || (!had_downloader && !e.seed)) s.last_progress = now;

    if (a.address != seeder_ && s.gateways.size() < options_.gateways &&
        !is_gateway(torrent, site, a.address)) {
        s.gateways.push_back(a.address);
    }
    return {};
}

Result<Reply> PeerTable::announce(const Announce& a, TimePoint now) {
    const auto it = torrents_.find(a.info_hash);
    if (it == torrents_.end()) return fail(Errc::not_found, "unknown torrent");
    Torrent& torrent = it->second;
    // Expired peers (and their gateway slots) go before anything is decided.
    sweep(torrent, now);
    const std::string site = site_of(a.address);
    if (a.event == Event::stopped) {
        if (const auto peer = torrent.peers.find(a.address); peer != torrent.peers.end()) {
            drop(torrent, peer);
        }
    } else if (auto ok = record(torrent, a, site, now); !ok) {
        return std::unexpected(ok.error());
    }
    return make_reply(torrent, a, site, now);
}

Reply PeerTable::make_reply(Torrent& torrent, const Announce& a, const std::string& site,
                            TimePoint now) {
    Reply reply;
    reply.interval = a.seed ? options_.seed_interval : options_.interval;
    reply.site = site;
    reply.complete = 1;  // the seeder
    const auto site_state = torrent.sites.find(site);
    static const std::set<PeerAddress> kNone;
    const auto& members = site_state == torrent.sites.end() ? kNone : site_state->second.members;
    for (const auto& address : members) {
        const auto entry = torrent.peers.find(address);
        if (address == seeder_ || entry == torrent.peers.end() || entry->second.expires <= now) {
            continue;  // expired, not swept yet
        }
        ++(entry->second.seed ? reply.complete : reply.incomplete);
    }
    if (a.event == Event::stopped || a.numwant <= 0) return reply;

    reply.gateway = is_gateway(torrent, site, a.address);
    reply.site_stalled = is_stalled(torrent, site, now);
    if (reply.gateway || reply.site_stalled) reply.peers.push_back({seeder_, {}});

    std::vector<Peer> others;
    others.reserve(members.size());
    for (const auto& address : members) {
        const auto entry = torrent.peers.find(address);
        if (entry == torrent.peers.end() || entry->second.expires <= now || address == a.address ||
            address == seeder_ || entry->second.peer_id == a.peer_id) {
            continue;
        }
        others.push_back({address, entry->second.peer_id});
    }
    const std::size_t want = static_cast<std::size_t>(a.numwant) - reply.peers.size();
    if (others.size() <= want) {
        reply.peers.insert(reply.peers.end(), others.begin(), others.end());
        return reply;
    }
    // More peers than wanted: hand out the next slice of the site so that, over many
    // announces, every peer is handed out.
    SiteState& state = torrent.sites[site];
    const std::size_t start = state.cursor % others.size();
    for (std::size_t i = 0; i < want; ++i) {
        reply.peers.push_back(others[(start + i) % others.size()]);
    }
    state.cursor = start + want;
    return reply;
}

SeederAccess PeerTable::seeder_access(std::string_view release_id, const PeerAddress& address,
                                      TimePoint now) const {
    const std::string site = site_of(address);
    const core::IpAddress ip = ip_of(address);
    const Torrent* torrent = nullptr;
    for (const auto& [hash, t] : torrents_) {
        if (t.id == release_id) torrent = &t;
    }
    if (!torrent)
        return options_.gateways > 0 ? SeederAccess::unknown_slots : SeederAccess::refused;

    // The web seed sees a connection's address, not its listen port: any live peer on that
    // address decides.
    // Its address decides its site, so only that site's peers can share it.
    bool known = false;
    if (const auto state = torrent->sites.find(site); state != torrent->sites.end()) {
        for (const auto& peer : state->second.members) {
            const auto entry = torrent->peers.find(peer);
            if (entry == torrent->peers.end() || entry->second.expires <= now ||
                ip_of(peer) != ip) {
                continue;
            }
            known = true;
            if (is_gateway(*torrent, site, peer)) return SeederAccess::gateway;
        }
    }
    if (is_stalled(*torrent, site, now)) return SeederAccess::stalled;
    if (!known && live_gateways(*torrent, site, now) < options_.gateways) {
        return SeederAccess::unknown_slots;
    }
    return SeederAccess::refused;
}

void PeerTable::expire(TimePoint now) {
    for (auto& [hash, torrent] : torrents_) sweep(torrent, now, /*force=*/true);
}

std::size_t PeerTable::peer_count(std::string_view info_hash) const {
    const auto it = torrents_.find(info_hash);
    return it == torrents_.end() ? 0 : it->second.peers.size();
}

const std::string* PeerTable::release_id(std::string_view info_hash) const {
    const auto it = torrents_.find(info_hash);
    return it == torrents_.end() ? nullptr : &it->second.id;
}

std::vector<PeerAddress> PeerTable::gateways(std::string_view info_hash,
                                             std::string_view site) const {
    const auto it = torrents_.find(info_hash);
    if (it == torrents_.end()) return {};
    const auto s = it->second.sites.find(site);
    return s == it->second.sites.end() ? std::vector<PeerAddress>{} : s->second.gateways;
}

// ---- bencoding -------------------------------------------------------------------------------

std::string bencode_reply(const Reply& reply, bool compact) {
    // Dictionary keys in sorted byte order, as bencoding requires.
    std::string out = "d";
    put_string(out, "complete");
    put_int(out, static_cast<std::int64_t>(reply.complete));
    put_string(out, "incomplete");
    put_int(out, static_cast<std::int64_t>(reply.incomplete));
    put_string(out, "interval");
    put_int(out, reply.interval.count());
    put_string(out, "min interval");
    put_int(out, reply.min_interval.count());
    put_string(out, "peers");
    if (compact) {
        std::string v4;
        std::string v6;
        for (const auto& peer : reply.peers) put_compact(peer.address.v6 ? v6 : v4, peer.address);
        put_string(out, v4);
        if (!v6.empty()) {
            put_string(out, "peers6");
            put_string(out, v6);
        }
    } else {
        out += 'l';
        for (const auto& peer : reply.peers) {
            out += 'd';
            put_string(out, "ip");
            put_string(out, ip_to_string(peer.address));
            if (!peer.peer_id.empty()) {
                put_string(out, "peer id");
                put_string(out, peer.peer_id);
            }
            put_string(out, "port");
            put_int(out, peer.address.port);
            out += 'e';
        }
        out += 'e';
    }
    out += 'e';
    return out;
}

std::string bencode_failure(std::string_view reason) {
    std::string out = "d";
    put_string(out, "failure reason");
    put_string(out, reason);
    out += 'e';
    return out;
}

}  // namespace patchswarm::seeder::tracker
