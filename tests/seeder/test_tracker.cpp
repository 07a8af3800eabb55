// The seeder's tracker as pure logic: announces parsed from raw query strings, the peer table
// with an injected clock, and the exact bencoded bytes of replies.
#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "seeder/tracker.hpp"

using namespace patchswarm;
using namespace patchswarm::seeder::tracker;
using namespace std::chrono_literals;

namespace {

const std::string kHash(20, '\x11');
const std::string kOtherHash(20, '\x22');

PeerAddress addr(const std::string& ip, std::uint16_t port) {
    auto a = make_address(ip, port);
    REQUIRE(a);
    return *a;
}

Announce announce_from(const std::string& ip, std::uint16_t port, char id_char,
                       Event event = Event::started) {
    Announce a;
    a.info_hash = kHash;
    a.peer_id = std::string(20, id_char);
    a.address = addr(ip, port);
    a.event = event;
    return a;
}

PeerTable make_table(TableOptions options = {}, core::SiteMap sites = {}) {
    PeerTable table(addr("10.0.0.1", 6881), options, std::move(sites));
    table.set_torrents({{kHash, "MS08-067"}});
    return table;
}

// For the tests of the peer list itself: every peer is a gateway, so every reply starts with
// the seeder as it did before sites.
TableOptions every_peer_a_gateway() {
    TableOptions options;
    options.gateways = 1000;
    return options;
}

Announce announce_left(const std::string& ip, char id_char, std::uint64_t left,
                       Event event = Event::none) {
    Announce a = announce_from(ip, 6881, id_char, event);
    a.left = left;
    a.seed = left == 0;
    return a;
}

// Not through addr(): REQUIRE cannot run during static initialisation.
const PeerAddress kSeeder = *make_address("10.0.0.1", 6881);

std::vector<PeerAddress> addresses(const Reply& r) {
    std::vector<PeerAddress> out;
    for (const auto& p : r.peers) out.push_back(p.address);
    return out;
}

bool contains(const Reply& r, const PeerAddress& a) {
    const auto all = addresses(r);
    return std::find(all.begin(), all.end(), a) != all.end();
}

}  // namespace

TEST_CASE("an announce query is decoded per parameter, keeping binary info_hash bytes", "[core]") {
    // %2B is a literal '+' byte, and a raw '+' must stay '+' too (it is not a space here).
    const std::string query =
        "info_hash=%00%01%02%03%04%05%06%07%08%09%0a%0B%0c%0d%0e%0f%10%11%2B+"
        "&peer_id=-LT2080-abcdefghijkl&port=6881&uploaded=0&downloaded=0&left=0"
        "&compact=1&numwant=200&event=started&key=abc&ip=6.6.6.6";
    auto a = parse_announce(query, "127.0.0.2");
    REQUIRE(a);
    std::string want;
    for (int i = 0; i < 18; ++i) want.push_back(static_cast<char>(i));
    want += "++";
    CHECK(a->info_hash == want);
    CHECK(a->peer_id == "-LT2080-abcdefghijkl");
    CHECK(a->address == addr("127.0.0.2", 6881));  // the "ip" parameter is ignored
    CHECK(a->numwant == kMaxNumwant);              // capped
    CHECK(a->compact);
    CHECK(a->seed);
    CHECK(a->event == Event::started);
}

TEST_CASE("malformed announces are refused with a reason", "[core]") {
    const std::string hash =
        "info_hash=%11%11%11%11%11%11%11%11%11%11%11%11%11%11%11%11%11%11%11%11";
    const std::string peer = "&peer_id=-LT2080-abcdefghijkl";
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"missing info_hash", "peer_id=-LT2080-abcdefghijkl&port=1"},
        {"short info_hash", "info_hash=abc" + peer + "&port=1"},
        {"short peer_id", hash + "&peer_id=x&port=1"},
        {"missing port", hash + peer},
        {"port zero", hash + peer + "&port=0"},
        {"port too large", hash + peer + "&port=65536"},
        {"port not a number", hash + peer + "&port=12a"},
        {"bad escape", hash + peer + "&port=1&key=%zz"},
        {"truncated escape", hash + peer + "&port=1&key=%4"},
        {"unknown event", hash + peer + "&port=1&event=exploded"},
        {"negative numwant", hash + peer + "&port=1&numwant=-1"},
        {"compact not 0/1", hash + peer + "&port=1&compact=yes"},
        {"too long", hash + peer + "&port=1&x=" + std::string(kMaxQueryBytes, 'a')},
    };
    for (const auto& [name, query] : cases) {
        INFO(name);
        CHECK_FALSE(parse_announce(query, "127.0.0.2"));
    }
    CHECK_FALSE(parse_announce(hash + peer + "&port=1", "not-an-address"));
}

TEST_CASE("IPv4-mapped IPv6 addresses are stored as IPv4", "[core]") {
    CHECK(addr("::ffff:10.1.2.3", 80) == addr("10.1.2.3", 80));
    CHECK_FALSE(addr("::1", 80).v6 == false);
    CHECK(parse_host_port("[::1]:6881") == addr("::1", 6881));
    CHECK(parse_host_port("10.0.0.1:6881") == addr("10.0.0.1", 6881));
    CHECK_FALSE(parse_host_port("10.0.0.1:0"));
    CHECK(parse_host_port("0.0.0.0:0", true));
    CHECK_FALSE(parse_host_port("::1:6881"));
    CHECK(is_unspecified(addr("0.0.0.0", 1)));
    CHECK(is_unspecified(addr("::", 1)));
}

TEST_CASE("the v2 info-hash is announced under its first 20 bytes", "[core]") {
    const std::string hex = "03b920e66ddc1b25b52b28b1fcf09652481d229d22d9010a8d28fb72f10b584f";
    auto h = announce_hash(hex);
    REQUIRE(h);
    CHECK(h->size() == 20);
    CHECK(static_cast<unsigned char>((*h)[0]) == 0x03);
    CHECK(static_cast<unsigned char>((*h)[19]) == 0x9d);
    CHECK_FALSE(announce_hash(hex.substr(0, 40)));
    CHECK_FALSE(announce_hash(std::string(63, 'a') + "g"));
}

TEST_CASE("a torrent that is not ours gets a failure, not peers", "[core]") {
    auto table = make_table();
    auto a = announce_from("10.0.0.2", 6881, 'a');
    a.info_hash = kOtherHash;
    auto r = table.announce(a, TimePoint{});
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::not_found);
    CHECK(bencode_failure(r.error().message) == "d14:failure reason15:unknown torrente");
    CHECK(table.peer_count(kOtherHash) == 0);
}

TEST_CASE("a peer gets the seeder and the other peers, never itself", "[core]") {
    auto table = make_table(every_peer_a_gateway());
    const TimePoint t0{};
    REQUIRE(table.announce(announce_from("10.0.0.2", 6881, 'a'), t0));
    REQUIRE(table.announce(announce_from("10.0.0.3", 6881, 'b'), t0));
    auto r = table.announce(announce_from("10.0.0.4", 7000, 'c'), t0);
    REQUIRE(r);
    CHECK(r->peers.front().address == addr("10.0.0.1", 6881));  // the seeder comes first
    CHECK(r->peers.size() == 3);
    CHECK(contains(*r, addr("10.0.0.2", 6881)));
    CHECK(contains(*r, addr("10.0.0.3", 6881)));
    CHECK_FALSE(contains(*r, addr("10.0.0.4", 7000)));
    CHECK(table.peer_count(kHash) == 3);

    // The same peer id from another port of the same host is still "self".
    auto again = table.announce(announce_from("10.0.0.4", 7001, 'c'), t0);
    REQUIRE(again);
    CHECK_FALSE(contains(*again, addr("10.0.0.4", 7000)));
}

TEST_CASE("the first peer of a swarm gets the seeder alone", "[core]") {
    auto table = make_table();
    auto r = table.announce(announce_from("10.0.0.2", 6881, 'a'), TimePoint{});
    REQUIRE(r);
    REQUIRE(r->peers.size() == 1);
    CHECK(r->peers[0].address == addr("10.0.0.1", 6881));
    CHECK(r->complete == 1);
    CHECK(r->incomplete == 1);
}

TEST_CASE("peers expire after two silent intervals and leave on stopped", "[core]") {
    auto table = make_table();
    const TimePoint t0{};
    REQUIRE(table.announce(announce_from("10.0.0.2", 6881, 'a'), t0));
    REQUIRE(table.announce(announce_from("10.0.0.3", 6881, 'b'), t0 + 40s));

    table.expire(t0 + 59s);
    CHECK(table.peer_count(kHash) == 2);
    table.expire(t0 + 60s);  // 2 x 30 s after its announce
    CHECK(table.peer_count(kHash) == 1);

    // An expired peer is not handed out even before a sweep.
    REQUIRE(table.announce(announce_from("10.0.0.5", 6881, 'e'), t0 + 61s));
    auto r = table.announce(announce_from("10.0.0.4", 6881, 'd'), t0 + 101s);
    REQUIRE(r);
    CHECK_FALSE(contains(*r, addr("10.0.0.3", 6881)));
    CHECK(contains(*r, addr("10.0.0.5", 6881)));

    auto stopped = table.announce(announce_from("10.0.0.5", 6881, 'e', Event::stopped), t0 + 102s);
    REQUIRE(stopped);
    CHECK(stopped->peers.empty());
    CHECK(table.peer_count(kHash) == 1);
}

TEST_CASE("seeds are asked to announce every 5 minutes and live for two of those", "[core]") {
    auto table = make_table();
    const TimePoint t0{};
    auto seed = announce_from("10.0.0.2", 6881, 's');
    seed.left = 0;
    seed.seed = true;
    const auto seed_reply = table.announce(seed, t0);
    REQUIRE(seed_reply);
    CHECK(seed_reply->interval == kSeedInterval);
    auto downloader = announce_from("10.0.0.3", 6881, 'd');
    downloader.left = 1000;
    const auto downloader_reply = table.announce(downloader, t0);
    REQUIRE(downloader_reply);
    CHECK(downloader_reply->interval == kInterval);

    table.expire(t0 + 2 * kInterval);  // the downloader fell silent
    CHECK(table.peer_count(kHash) == 1);
    table.expire(t0 + 2 * kSeedInterval - 1s);
    CHECK(table.peer_count(kHash) == 1);
    table.expire(t0 + 2 * kSeedInterval);
    CHECK(table.peer_count(kHash) == 0);
}

TEST_CASE("numwant caps the reply and the table rotates through many peers", "[core]") {
    auto table = make_table(every_peer_a_gateway());
    const TimePoint t0{};
    for (int i = 0; i < 120; ++i) {
        auto a = announce_from("10.1.0." + std::to_string(i + 1), 6881, static_cast<char>('A' + i));
        REQUIRE(table.announce(a, t0));
    }
    std::set<PeerAddress> seen;
    for (int round = 0; round < 3; ++round) {
        auto r = table.announce(announce_from("10.1.0.200", 6881, '!'), t0);
        REQUIRE(r);
        CHECK(r->peers.size() == static_cast<std::size_t>(kMaxNumwant));
        CHECK(r->peers.front().address == addr("10.0.0.1", 6881));
        for (const auto& p : r->peers) seen.insert(p.address);
    }
    CHECK(seen.size() == 121);  // every peer handed out within three replies, plus the seeder

    auto few = announce_from("10.1.0.200", 6881, '!');
    few.numwant = 3;
    auto r = table.announce(few, t0);
    REQUIRE(r);
    CHECK(r->peers.size() == 3);
}

TEST_CASE("a full torrent table refuses new peers but keeps answering known ones", "[core]") {
    auto table = make_table(TableOptions{kInterval, 2});
    REQUIRE(table.announce(announce_from("10.0.0.2", 1, 'a'), TimePoint{}));
    REQUIRE(table.announce(announce_from("10.0.0.3", 1, 'b'), TimePoint{}));
    auto r = table.announce(announce_from("10.0.0.4", 1, 'c'), TimePoint{});
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::too_large);
    CHECK(table.announce(announce_from("10.0.0.2", 1, 'a'), TimePoint{}));
}

TEST_CASE("replacing the torrent set keeps peers of torrents that stay", "[core]") {
    auto table = make_table();
    REQUIRE(table.announce(announce_from("10.0.0.2", 1, 'a'), TimePoint{}));
    table.set_torrents({{kHash, "MS08-067"}, {kOtherHash, "KB2"}});
    CHECK(table.peer_count(kHash) == 1);
    REQUIRE(table.release_id(kOtherHash));
    CHECK(*table.release_id(kOtherHash) == "KB2");
    table.set_torrents({{kOtherHash, "KB2"}});
    CHECK(table.release_id(kHash) == nullptr);
    CHECK_FALSE(table.announce(announce_from("10.0.0.2", 1, 'a'), TimePoint{}));
}

TEST_CASE("compact replies encode IPv4 peers in 6 bytes and IPv6 peers in 18", "[core]") {
    Reply reply;
    reply.complete = 1;
    reply.incomplete = 2;
    reply.peers = {
        {addr("10.0.0.1", 6881), ""}, {addr("192.168.1.20", 0x1234), "x"}, {addr("::1", 80), "y"}};
    const std::string v4 =
        std::string("\x0a\x00\x00\x01\x1a\xe1", 6) + std::string("\xc0\xa8\x01\x14\x12\x34", 6);
    const std::string v6 = std::string(15, '\0') + "\x01" + std::string("\x00\x50", 2);
    const std::string want =
        "d8:completei1e10:incompletei2e8:intervali30e12:min intervali15e"
        "5:peers12:" +
        v4 + "6:peers618:" + v6 + "e";
    CHECK(bencode_reply(reply, true) == want);

    reply.peers.pop_back();
    CHECK(bencode_reply(reply, true) ==
          "d8:completei1e10:incompletei2e8:intervali30e12:min intervali15e5:peers12:" + v4 + "e");
}

TEST_CASE("non-compact replies list peers as dictionaries", "[core]") {
    Reply reply;
    reply.peers = {{addr("10.0.0.1", 6881), ""}, {addr("10.0.0.2", 80), "abcdefghijklmnopqrst"}};
    CHECK(bencode_reply(reply, false) ==
          "d8:completei0e10:incompletei0e8:intervali30e12:min intervali15e5:peersl"
          "d2:ip8:10.0.0.14:porti6881ee"
          "d2:ip8:10.0.0.27:peer id20:abcdefghijklmnopqrst4:porti80ee"
          "ee");
}

// ---- sites -----------------------------------------------------------------------------------

TEST_CASE("peers are answered with peers of their own site only", "[core]") {
    auto sites = core::SiteMap::parse({"east=10.1.0.0/16", "west=10.2.0.0/16,10.3.0.0/24"});
    REQUIRE(sites);
    auto table = make_table(every_peer_a_gateway(), *sites);
    const TimePoint t0{};
    // Two configured sites (west has two ranges) and two automatic /24 sites.
    const std::vector<std::string> ips = {"10.1.0.2",    "10.1.5.3",    "10.2.0.2",
                                          "10.3.0.9",    "192.168.5.2", "192.168.5.3",
                                          "192.168.6.2", "10.1.9.9",    "10.2.7.7"};
    std::map<std::string, std::string> site_of = {{"10.1.0.2", "east"},
                                                  {"10.1.5.3", "east"},
                                                  {"10.1.9.9", "east"},
                                                  {"10.2.0.2", "west"},
                                                  {"10.3.0.9", "west"},
                                                  {"10.2.7.7", "west"},
                                                  {"192.168.5.2", "auto:192.168.5.0/24"},
                                                  {"192.168.5.3", "auto:192.168.5.0/24"},
                                                  {"192.168.6.2", "auto:192.168.6.0/24"}};
    for (int round = 0; round < 2; ++round) {
        for (std::size_t i = 0; i < ips.size(); ++i) {
            const std::string& ip = ips[i];
            INFO(ip);
            auto r = table.announce(announce_from(ip, 6881, static_cast<char>('a' + i)), t0);
            REQUIRE(r);
            CHECK(r->site == site_of.at(ip));
            for (const auto& p : r->peers) {
                if (p.address == kSeeder) continue;
                CHECK(site_of.at(ip_to_string(p.address)) == site_of.at(ip));
            }
        }
    }
    // The second round sees everyone: each site gets all of its other peers.
    auto east = table.announce(announce_from("10.1.0.2", 6881, 'a'), t0);
    REQUIRE(east);
    CHECK(east->peers.size() == 3);  // seeder + 10.1.5.3 + 10.1.9.9
    CHECK(contains(*east, addr("10.1.9.9", 6881)));
    auto lonely = table.announce(announce_from("192.168.6.2", 6881, 'g'), t0);
    REQUIRE(lonely);
    REQUIRE(lonely->peers.size() == 1);
    CHECK(lonely->peers[0].address == kSeeder);
    CHECK(east->incomplete == 3);  // counts are per site too
}

TEST_CASE("the seeder goes to the first N peers of a site, and a gateway that leaves is replaced",
          "[core]") {
    TableOptions options;
    options.gateways = 2;
    auto table = make_table(options);
    const TimePoint t0{};
    auto first = table.announce(announce_left("10.5.0.2", 'a', 100), t0);
    auto second = table.announce(announce_left("10.5.0.3", 'b', 100), t0 + 1s);
    auto third = table.announce(announce_left("10.5.0.4", 'c', 100), t0 + 2s);
    REQUIRE(first);
    REQUIRE(second);
    REQUIRE(third);
    CHECK(first->gateway);
    CHECK(contains(*first, kSeeder));
    CHECK(second->gateway);
    CHECK(contains(*second, kSeeder));
    CHECK_FALSE(third->gateway);
    CHECK_FALSE(contains(*third, kSeeder));
    CHECK(contains(*third, addr("10.5.0.2", 6881)));  // it fills from the gateways
    CHECK(table.gateways(kHash, "auto:10.5.0.0/24") ==
          std::vector<PeerAddress>{addr("10.5.0.2", 6881), addr("10.5.0.3", 6881)});

    // Another site has gateways of its own.
    auto other = table.announce(announce_left("10.6.0.2", 'x', 100), t0 + 2s);
    REQUIRE(other);
    CHECK(other->gateway);

    // A gateway that stops is replaced by the next peer to announce.
    REQUIRE(table.announce(announce_left("10.5.0.2", 'a', 90, Event::stopped), t0 + 3s));
    auto promoted = table.announce(announce_left("10.5.0.4", 'c', 90), t0 + 4s);
    REQUIRE(promoted);
    CHECK(promoted->gateway);
    CHECK(contains(*promoted, kSeeder));

    // A gateway that falls silent expires after two intervals and is replaced too; the one
    // that keeps announcing stays a gateway.
    REQUIRE(table.announce(announce_left("10.5.0.5", 'd', 100), t0 + 30s));
    REQUIRE(table.announce(announce_left("10.5.0.4", 'c', 50), t0 + 40s));
    auto late = table.announce(announce_left("10.5.0.5", 'd', 80), t0 + 62s);  // .3 expired at 61 s
    REQUIRE(late);
    CHECK(late->gateway);
    CHECK(table.gateways(kHash, "auto:10.5.0.0/24") ==
          std::vector<PeerAddress>{addr("10.5.0.4", 6881), addr("10.5.0.5", 6881)});
    auto kept = table.announce(announce_left("10.5.0.4", 'c', 40), t0 + 63s);
    REQUIRE(kept);
    CHECK(kept->gateway);
}

TEST_CASE("a site that makes no progress for site_stall gets the seeder for every peer", "[core]") {
    TableOptions options;
    options.gateways = 1;
    options.site_stall = 30s;
    auto table = make_table(options);
    const TimePoint t0{};
    REQUIRE(table.announce(announce_left("10.5.0.2", 'a', 100), t0));  // the gateway
    REQUIRE(table.announce(announce_left("10.5.0.3", 'b', 100), t0));
    REQUIRE(table.announce(announce_left("10.7.0.2", 'z', 100), t0));  // another site

    auto waiting = table.announce(announce_left("10.5.0.3", 'b', 100), t0 + 29s);
    REQUIRE(waiting);
    CHECK_FALSE(waiting->site_stalled);
    CHECK_FALSE(contains(*waiting, kSeeder));

    auto stalled = table.announce(announce_left("10.5.0.3", 'b', 100), t0 + 30s);
    REQUIRE(stalled);
    CHECK(stalled->site_stalled);
    CHECK(stalled->peers.front().address == kSeeder);

    // Less `left` from any peer of the site is progress, and the fallback ends.
    REQUIRE(table.announce(announce_left("10.5.0.2", 'a', 60), t0 + 31s));
    auto moving = table.announce(announce_left("10.5.0.3", 'b', 100), t0 + 32s);
    REQUIRE(moving);
    CHECK_FALSE(moving->site_stalled);
    CHECK_FALSE(contains(*moving, kSeeder));

    // Progress in one site does nothing for another: 10.7.0.0/24 has one peer, its gateway,
    // which still gets the seeder; its site is stalled all the same.
    auto other = table.announce(announce_left("10.7.0.2", 'z', 100), t0 + 40s);
    REQUIRE(other);
    CHECK(other->gateway);
    CHECK(other->site_stalled);

    // A peer completing is progress.
    REQUIRE(table.announce(announce_left("10.5.0.3", 'b', 100), t0 + 61s));
    auto before = table.announce(announce_left("10.5.0.3", 'b', 100), t0 + 62s);
    REQUIRE(before);
    CHECK(before->site_stalled);
    REQUIRE(table.announce(announce_left("10.5.0.2", 'a', 0, Event::completed), t0 + 63s));
    auto after = table.announce(announce_left("10.5.0.3", 'b', 100), t0 + 64s);
    REQUIRE(after);
    CHECK_FALSE(after->site_stalled);

    // A peer joining does not count as progress, nor does one leaving.
    REQUIRE(table.announce(announce_left("10.5.0.4", 'c', 500), t0 + 80s));
    REQUIRE(table.announce(announce_left("10.5.0.4", 'c', 500, Event::stopped), t0 + 90s));
    auto later = table.announce(announce_left("10.5.0.3", 'b', 100), t0 + 94s);
    REQUIRE(later);
    CHECK(later->site_stalled);
}

TEST_CASE("a site of seeds is not stalled, and a new downloader there starts the timer", "[core]") {
    TableOptions options;
    options.gateways = 1;
    options.site_stall = 30s;
    auto table = make_table(options);
    const TimePoint t0{};
    REQUIRE(table.announce(announce_left("10.5.0.2", 'a', 0), t0));
    REQUIRE(table.announce(announce_left("10.5.0.3", 'b', 0), t0));
    REQUIRE(table.announce(announce_left("10.5.0.2", 'a', 0), t0 + 50s));
    auto seed = table.announce(announce_left("10.5.0.3", 'b', 0), t0 + 50s);
    REQUIRE(seed);
    CHECK_FALSE(seed->site_stalled);

    // A late waker fills from its LAN seeds, not from HQ.
    auto late = table.announce(announce_left("10.5.0.4", 'c', 100), t0 + 55s);
    REQUIRE(late);
    CHECK_FALSE(late->site_stalled);
    CHECK_FALSE(contains(*late, kSeeder));
    CHECK(contains(*late, addr("10.5.0.3", 6881)));
    auto stuck = table.announce(announce_left("10.5.0.4", 'c', 100), t0 + 85s);
    REQUIRE(stuck);
    CHECK_FALSE(stuck->gateway);
    CHECK(stuck->site_stalled);
    CHECK(contains(*stuck, kSeeder));
}

TEST_CASE("the web seed follows the tracker's decision", "[core]") {
    TableOptions options;
    options.gateways = 1;
    options.site_stall = 30s;
    auto table = make_table(options);
    const TimePoint t0{};
    const std::string id = "MS08-067";
    // An empty site: an unknown address may use HQ while the site has a free gateway slot.
    CHECK(table.seeder_access(id, addr("10.5.0.9", 0), t0) == SeederAccess::unknown_slots);
    // A release the tracker does not know: every address is unknown in an empty site.
    CHECK(table.seeder_access("KB-unknown", addr("10.5.0.9", 0), t0) ==
          SeederAccess::unknown_slots);

    REQUIRE(table.announce(announce_left("10.5.0.2", 'a', 100), t0));
    REQUIRE(table.announce(announce_left("10.5.0.3", 'b', 100), t0));
    // The web seed sees a connection's source port, not the listen port.
    CHECK(table.seeder_access(id, addr("10.5.0.2", 40123), t0) == SeederAccess::gateway);
    CHECK(table.seeder_access(id, addr("10.5.0.3", 40124), t0) == SeederAccess::refused);
    CHECK(table.seeder_access(id, addr("10.5.0.9", 40125), t0) == SeederAccess::refused);
    CHECK_FALSE(allowed(SeederAccess::refused));
    // Another site's unknown address has its own slots.
    CHECK(table.seeder_access(id, addr("10.6.0.9", 40126), t0) == SeederAccess::unknown_slots);

    CHECK(table.seeder_access(id, addr("10.5.0.3", 40124), t0 + 30s) == SeederAccess::stalled);
    CHECK(table.seeder_access(id, addr("10.5.0.9", 40125), t0 + 30s) == SeederAccess::stalled);
    // The gateway expired (no announce for two intervals): its slot is free again, but the
    // non-gateway it left behind expired too, so the site is empty.
    CHECK(table.seeder_access(id, addr("10.5.0.2", 40123), t0 + 60s) ==
          SeederAccess::unknown_slots);
}

TEST_CASE("gateways=0 leaves only the stall fallback", "[core]") {
    TableOptions options;
    options.gateways = 0;
    options.site_stall = 10s;
    auto table = make_table(options);
    const TimePoint t0{};
    auto r = table.announce(announce_left("10.5.0.2", 'a', 100), t0);
    REQUIRE(r);
    CHECK(r->peers.empty());
    CHECK(table.seeder_access("MS08-067", addr("10.5.0.7", 0), t0) == SeederAccess::refused);
    auto later = table.announce(announce_left("10.5.0.2", 'a', 100), t0 + 10s);
    REQUIRE(later);
    CHECK(later->peers.front().address == kSeeder);
}

TEST_CASE("the announce's left is parsed for progress", "[core]") {
    const std::string query =
        "info_hash=%11%11%11%11%11%11%11%11%11%11%11%11%11%11%11%11%11%11%11%11"
        "&peer_id=-LT2080-abcdefghijkl&port=6881&left=12345";
    auto a = parse_announce(query, "10.0.0.2");
    REQUIRE(a);
    REQUIRE(a->left);
    CHECK(*a->left == 12345);
    CHECK_FALSE(a->seed);
    auto none = parse_announce(query.substr(0, query.find("&left")), "10.0.0.2");
    REQUIRE(none);
    CHECK_FALSE(none->left);
}
