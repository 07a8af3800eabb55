// The seeder's tracker as pure logic: announces parsed from raw query strings, the peer table
// with an injected clock, and the exact bencoded bytes of replies.
#include <algorithm>
#include <catch2/catch.hpp>
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

PeerTable make_table(TableOptions options = {}) {
    PeerTable table(addr("10.0.0.1", 6881), options);
    table.set_torrents({{kHash, "MS08-067"}});
    return table;
}

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
    auto table = make_table();
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

TEST_CASE("numwant caps the reply and the table rotates through many peers", "[core]") {
    auto table = make_table();
    const TimePoint t0{};
    for (int i = 0; i < 120; ++i) {
        auto a = announce_from("10.1.0." + std::to_string(i + 1), 6881, static_cast<char>('A' + i));
        REQUIRE(table.announce(a, t0));
    }
    std::set<PeerAddress> seen;
    for (int round = 0; round < 3; ++round) {
        auto r = table.announce(announce_from("10.2.0.1", 6881, '!'), t0);
        REQUIRE(r);
        CHECK(r->peers.size() == static_cast<std::size_t>(kMaxNumwant));
        CHECK(r->peers.front().address == addr("10.0.0.1", 6881));
        for (const auto& p : r->peers) seen.insert(p.address);
    }
    CHECK(seen.size() == 121);  // every peer handed out within three replies, plus the seeder

    auto few = announce_from("10.2.0.1", 6881, '!');
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
