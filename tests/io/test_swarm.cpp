// libtorrent adapter tests: real sessions on loopback, one 127.0.0.x address per endpoint.
#include <sys/stat.h>

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <libtorrent/bencode.hpp>
#include <libtorrent/create_torrent.hpp>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "io/swarm/session.hpp"

namespace fs = std::filesystem;
using namespace patchswarm;
using namespace patchswarm::io::swarm;
using namespace std::chrono_literals;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "swarm-test-XXXXXX").string();
        path = ::mkdtemp(tmpl.data());
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
};

void write_random(const fs::path& path, std::size_t size, std::uint64_t seed) {
    fs::create_directories(path.parent_path());
    std::mt19937_64 rng(seed);
    std::vector<char> data(size);
    for (auto& c : data) c = static_cast<char>(rng());
    std::ofstream out(path, std::ios::binary);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

std::vector<char> read_all(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Three files, one of them odd-sized and one smaller than a block, in a nested folder.
constexpr std::uint64_t kSizeA = 3 * 1024 * 1024;
constexpr std::uint64_t kSizeB = 1024 * 1024 + 12345;
constexpr std::uint64_t kSizeC = 777;
constexpr std::uint64_t kPayloadSize = kSizeA + kSizeB + kSizeC;

fs::path make_payload(const fs::path& parent) {
    const fs::path root = parent / "payload";
    write_random(root / "a.bin", kSizeA, 1);
    write_random(root / "sub" / "b.bin", kSizeB, 2);
    write_random(root / "sub" / "c.txt", kSizeC, 3);
    return root;
}

bool same_tree(const fs::path& a, const fs::path& b) {
    for (const char* rel : {"a.bin", "sub/b.bin", "sub/c.txt"}) {
        if (!fs::exists(b / rel) || read_all(a / rel) != read_all(b / rel)) return false;
    }
    return true;
}

// Runs the io_context until `done` holds or the deadline passes; never a fixed sleep.
bool run_until(boost::asio::io_context& io, const std::function<bool()>& done,
               std::chrono::steady_clock::duration timeout = 60s) {
    // Dropping the previous call's work guard with nothing queued stopped the io_context.
    if (io.stopped()) io.restart();
    auto guard = boost::asio::make_work_guard(io);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        io.run_for(20ms);
    }
    return true;
}

struct Node {
    std::unique_ptr<Session> session;
    int finished = 0;
    std::vector<std::string> errors;
    int hash_fails = 0;
    std::vector<std::string> hash_fail_from;
    std::vector<Status> progress;  // every Status of every on_progress event, in order

    std::uint16_t port() const { return session->listen_port(); }
    Status status(const std::string& id) const {
        auto s = session->status(id);
        REQUIRE(s.has_value());
        return *s;
    }
};

std::unique_ptr<Node> make_node(boost::asio::io_context& io, const std::string& ip,
                                const fs::path& resume_dir, int upload_rate_limit = 0,
                                const std::function<void(Settings&)>& tweak = {}) {
    auto node = std::make_unique<Node>();
    Node* n = node.get();
    Settings settings;
    settings.listen = ip + ":0";
    settings.resume_dir = resume_dir;
    settings.enable_lsd = false;  // peers come only from AddParams.peers / connect_peer
    settings.min_reconnect_time_s = 1;
    settings.seeder_addresses = {"127.0.0.1"};
    settings.upload_rate_limit = upload_rate_limit;
    if (tweak) tweak(settings);
    Callbacks callbacks;
    callbacks.on_finished = [n](const std::string&) { ++n->finished; };
    callbacks.on_error = [n](const std::string&, const std::string& m) { n->errors.push_back(m); };
    callbacks.on_hash_fail = [n](const std::string&, const std::vector<std::string>& from) {
        ++n->hash_fails;
        n->hash_fail_from.insert(n->hash_fail_from.end(), from.begin(), from.end());
    };
    callbacks.on_progress = [n](const std::vector<Status>& changed) {
        n->progress.insert(n->progress.end(), changed.begin(), changed.end());
    };
    auto session = Session::create(io, std::move(settings), std::move(callbacks));
    INFO((session ? "" : session.error().message));
    REQUIRE(session.has_value());
    node->session = std::move(*session);
    REQUIRE(node->port() != 0);
    return node;
}

std::string endpoint(const std::string& ip, const Node& n) {
    return ip + ":" + std::to_string(n.port());
}

AddParams add_params(const TorrentSummary& t, const fs::path& save_path, bool seed,
                     std::vector<std::string> peers = {}) {
    AddParams p;
    p.id = "rel-1";
    p.torrent = t.bytes;
    p.save_path = save_path;
    p.seed = seed;
    p.peers = std::move(peers);
    return p;
}

std::vector<std::uint8_t> bencode_torrent(lt::create_torrent& ct) {
    std::vector<std::uint8_t> out;
    lt::bencode(std::back_inserter(out), ct.generate());
    return out;
}

}  // namespace

TEST_CASE("create_torrent builds a stable v2 torrent of a folder or a single file", "[net]") {
    TempDir tmp;
    const fs::path root = make_payload(tmp.path);

    auto first = create_torrent(root);
    INFO((first ? "" : first.error().message));
    REQUIRE(first.has_value());
    auto second = create_torrent(tmp.path / "payload/");
    REQUIRE(second.has_value());

    CHECK(first->infohash_v2.size() == 64);
    CHECK(std::all_of(first->infohash_v2.begin(), first->infohash_v2.end(),
                      [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }));
    CHECK(first->infohash_v2 == second->infohash_v2);
    CHECK(first->bytes == second->bytes);
    CHECK(first->name == "payload");
    CHECK_FALSE(first->single_file);
    REQUIRE(first->files.size() == 3);
    CHECK(first->files[0].path == "a.bin");
    CHECK(first->files[0].size == kSizeA);
    CHECK(first->files[1].path == "sub/b.bin");
    CHECK(first->files[1].size == kSizeB);
    CHECK(first->files[2].path == "sub/c.txt");
    CHECK(first->files[2].size == kSizeC);

    write_random(tmp.path / "single" / "patch.bin", 100000, 4);
    auto single = create_torrent(tmp.path / "single" / "patch.bin");
    INFO((single ? "" : single.error().message));
    REQUIRE(single.has_value());
    CHECK(single->single_file);
    CHECK(single->name == "patch.bin");
    REQUIRE(single->files.size() == 1);
    CHECK(single->files[0].path == "patch.bin");
    CHECK(single->files[0].size == 100000);
    CHECK(single->infohash_v2 != first->infohash_v2);
}

TEST_CASE("create_torrent refuses symlinks and special files in the payload", "[net]") {
    TempDir tmp;
    const fs::path root = make_payload(tmp.path);

    SECTION("a symlink inside the folder") {
        fs::create_symlink("/etc/passwd", root / "sub" / "link");
        auto r = create_torrent(root);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::unsafe_path);
    }
    SECTION("the payload itself is a symlink") {
        fs::create_directory_symlink(root, tmp.path / "alias");
        auto r = create_torrent(tmp.path / "alias");
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::unsafe_path);
    }
    SECTION("a named pipe inside the folder") {
        REQUIRE(::mkfifo((root / "fifo").c_str(), 0600) == 0);
        auto r = create_torrent(root);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::unsafe_path);
    }
    SECTION("a missing payload") {
        auto r = create_torrent(tmp.path / "nothing-here");
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::not_found);
    }
}

TEST_CASE("inspect_torrent accepts our torrents and rejects garbage, v1 and symlinks", "[net]") {
    TempDir tmp;
    const fs::path root = make_payload(tmp.path);
    auto created = create_torrent(root);
    REQUIRE(created.has_value());

    auto ok = inspect_torrent(created->bytes);
    INFO((ok ? "" : ok.error().message));
    REQUIRE(ok.has_value());
    CHECK(ok->infohash_v2 == created->infohash_v2);
    CHECK(ok->name == "payload");
    CHECK(ok->files.size() == 3);
    CHECK(ok->bytes == created->bytes);

    SECTION("garbage") {
        const std::string text = "this is not bencode";
        auto r = inspect_torrent(std::vector<std::uint8_t>(text.begin(), text.end()));
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::malformed);
    }
    SECTION("empty") {
        auto r = inspect_torrent({});
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::malformed);
    }
    SECTION("truncated") {
        for (std::size_t cut :
             {std::size_t{1}, created->bytes.size() / 2, created->bytes.size() - 1}) {
            std::vector<std::uint8_t> bytes(
                created->bytes.begin(), created->bytes.begin() + static_cast<std::ptrdiff_t>(cut));
            auto r = inspect_torrent(bytes);
            REQUIRE_FALSE(r.has_value());
            CHECK(r.error().code == Errc::malformed);
        }
    }
    SECTION("deeply nested lists") {
        std::string text(10000, 'l');
        text += std::string(10000, 'e');
        auto r = inspect_torrent(std::vector<std::uint8_t>(text.begin(), text.end()));
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::too_large);
    }
    SECTION("larger than the buffer limit") {
        auto r = inspect_torrent(std::vector<std::uint8_t>(65 * 1024 * 1024, 'x'));
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::too_large);
    }
    SECTION("a v1-only torrent") {
        lt::file_storage files;
        lt::add_files(files, root.string());
        lt::create_torrent ct(files, 0, lt::create_torrent::v1_only);
        lt::set_piece_hashes(ct, tmp.path.string());
        auto r = inspect_torrent(bencode_torrent(ct));
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::malformed);
    }
    SECTION("a v2 torrent carrying a symlink attribute") {
        fs::create_symlink("/etc/passwd", root / "sub" / "link");
        lt::file_storage files;
        lt::add_files(files, root.string(), lt::create_torrent::symlinks);
        lt::create_torrent ct(files, 0, lt::create_torrent::v2_only | lt::create_torrent::symlinks);
        lt::set_piece_hashes(ct, tmp.path.string());
        auto r = inspect_torrent(bencode_torrent(ct));
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::unsafe_path);
    }
}

TEST_CASE("two leechers download from a seeder and bytes are attributed by source", "[net]") {
    TempDir tmp;
    const fs::path root = make_payload(tmp.path / "seed");
    auto torrent = create_torrent(root);
    REQUIRE(torrent.has_value());
    boost::asio::io_context io;

    auto seeder = make_node(io, "127.0.0.1", tmp.path / "seeder-resume");
    REQUIRE(seeder->session->add(add_params(*torrent, tmp.path / "seed", true)).has_value());
    REQUIRE(run_until(io, [&] { return seeder->finished == 1; }));
    CHECK(seeder->status("rel-1").finished);
    CHECK(seeder->status("rel-1").total_wanted == kPayloadSize);

    const std::string seed_ep = endpoint("127.0.0.1", *seeder);
    auto l1 = make_node(io, "127.0.0.2", tmp.path / "l1-resume");
    auto l2 = make_node(io, "127.0.0.3", tmp.path / "l2-resume");
    REQUIRE(l1->session->add(add_params(*torrent, tmp.path / "l1", false, {seed_ep})).has_value());
    REQUIRE(l2->session->add(add_params(*torrent, tmp.path / "l2", false, {seed_ep})).has_value());
    CHECK(l1->session->add(add_params(*torrent, tmp.path / "l1", false)).error().code ==
          Errc::already_exists);

    REQUIRE(run_until(io, [&] { return l1->finished == 1 && l2->finished == 1; }));
    for (Node* n : {l1.get(), l2.get()}) {
        const Status s = n->status("rel-1");
        CHECK(s.finished);
        CHECK(s.progress == Approx(1.0));
        CHECK(s.total_done == kPayloadSize);
        CHECK(s.bytes_from_seeder + s.bytes_from_peers == kPayloadSize);
        CHECK(n->errors.empty());
        CHECK(n->hash_fails == 0);
    }
    CHECK(same_tree(root, tmp.path / "l1" / "payload"));
    CHECK(same_tree(root, tmp.path / "l2" / "payload"));
    CHECK(seeder->status("rel-1").total_uploaded > 0);

    // A third endpoint that only knows a finished leecher gets every byte from a peer.
    auto l3 = make_node(io, "127.0.0.4", tmp.path / "l3-resume");
    REQUIRE(
        l3->session->add(add_params(*torrent, tmp.path / "l3", false, {endpoint("127.0.0.3", *l2)}))
            .has_value());
    REQUIRE(run_until(io, [&] { return l3->finished == 1; }));
    const Status s3 = l3->status("rel-1");
    CHECK(s3.bytes_from_peers == kPayloadSize);
    CHECK(s3.bytes_from_seeder == 0);
    CHECK(same_tree(root, tmp.path / "l3" / "payload"));
    CHECK(l1->session->status_all().size() == 1);
}

TEST_CASE("a restarted endpoint resumes a finished download without fetching it again", "[net]") {
    TempDir tmp;
    const fs::path root = make_payload(tmp.path / "seed");
    auto torrent = create_torrent(root);
    REQUIRE(torrent.has_value());
    boost::asio::io_context io;

    auto seeder = make_node(io, "127.0.0.1", tmp.path / "seeder-resume");
    REQUIRE(seeder->session->add(add_params(*torrent, tmp.path / "seed", true)).has_value());
    REQUIRE(run_until(io, [&] { return seeder->finished == 1; }));
    const std::string seed_ep = endpoint("127.0.0.1", *seeder);

    const fs::path resume_dir = tmp.path / "leecher-resume";
    {
        auto leecher = make_node(io, "127.0.0.5", resume_dir);
        REQUIRE(leecher->session->add(add_params(*torrent, tmp.path / "dl", false, {seed_ep}))
                    .has_value());
        REQUIRE(run_until(io, [&] { return leecher->finished == 1; }));
        CHECK(leecher->status("rel-1").bytes_from_seeder == kPayloadSize);
        leecher->session->save_resume_data_and_wait(10s);
        CHECK(fs::exists(resume_dir / "rel-1.resume"));
    }
    // Nothing but the resume file may be left behind by the atomic write.
    CHECK(std::distance(fs::directory_iterator(resume_dir), fs::directory_iterator()) == 1);

    auto again = make_node(io, "127.0.0.5", resume_dir);
    REQUIRE(
        again->session->add(add_params(*torrent, tmp.path / "dl", false, {seed_ep})).has_value());
    REQUIRE(run_until(io, [&] { return again->finished == 1; }));
    const Status s = again->status("rel-1");
    CHECK(s.finished);
    CHECK(s.total_done == kPayloadSize);
    CHECK(s.bytes_from_seeder == 0);
    CHECK(s.bytes_from_peers == 0);
    again->session->save_resume_data_and_wait(5s);  // also runs the alert loop once more
    CHECK(again->finished == 1);
    CHECK(same_tree(root, tmp.path / "dl" / "payload"));
}

TEST_CASE("a corrupt piece from a bad seeder fails its hash and is fetched again elsewhere",
          "[net]") {
    TempDir tmp;
    const fs::path root = make_payload(tmp.path / "seed");
    auto torrent = create_torrent(root);
    REQUIRE(torrent.has_value());
    fs::create_directories(tmp.path / "bad");
    fs::copy(root, tmp.path / "bad" / "payload", fs::copy_options::recursive);
    boost::asio::io_context io;

    auto good = make_node(io, "127.0.0.1", tmp.path / "good-resume");
    REQUIRE(good->session->add(add_params(*torrent, tmp.path / "seed", true)).has_value());
    auto bad = make_node(io, "127.0.0.6", tmp.path / "bad-resume");
    REQUIRE(bad->session->add(add_params(*torrent, tmp.path / "bad", true)).has_value());
    REQUIRE(run_until(io, [&] { return good->finished == 1 && bad->finished == 1; }));

    // Corrupt the bad seeder's copy after its check, in place: it now serves wrong bytes for
    // one piece while believing it has them all.
    {
        std::fstream f(tmp.path / "bad" / "payload" / "a.bin",
                       std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(1024 * 1024 + 100);
        std::vector<char> junk(4096);
        for (std::size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<char>(i * 7 + 1);
        f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    }
    REQUIRE_FALSE(same_tree(root, tmp.path / "bad" / "payload"));

    const std::string bad_ep = endpoint("127.0.0.6", *bad);
    auto leecher = make_node(io, "127.0.0.7", tmp.path / "leecher-resume");
    REQUIRE(
        leecher->session->add(add_params(*torrent, tmp.path / "dl", false, {bad_ep})).has_value());
    REQUIRE(run_until(io, [&] { return leecher->hash_fails > 0; }));
    CHECK(leecher->finished == 0);
    CHECK_FALSE(leecher->status("rel-1").finished);
    CHECK(std::find(leecher->hash_fail_from.begin(), leecher->hash_fail_from.end(), bad_ep) !=
          leecher->hash_fail_from.end());

    leecher->session->connect_peer("rel-1", endpoint("127.0.0.1", *good));
    REQUIRE(run_until(io, [&] { return leecher->finished == 1; }));
    const Status s = leecher->status("rel-1");
    CHECK(s.finished);
    CHECK(s.bytes_from_seeder + s.bytes_from_peers == kPayloadSize);
    CHECK(s.bytes_from_seeder > 0);   // at least the corrupt piece came from the good seeder
    CHECK(leecher->hash_fails == 1);  // the bad seeder was banned by address, not retried
    CHECK(same_tree(root, tmp.path / "dl" / "payload"));
}

TEST_CASE("a session cannot be created on a port that is taken", "[net]") {
    TempDir tmp;
    boost::asio::io_context io;
    auto first = make_node(io, "127.0.0.8", tmp.path / "a");
    Settings settings;
    settings.listen = "127.0.0.8:" + std::to_string(first->port());
    settings.resume_dir = tmp.path / "b";
    settings.enable_lsd = false;
    auto second = Session::create(io, settings, {});
    REQUIRE_FALSE(second.has_value());
    CHECK(second.error().code == Errc::network);

    settings.listen = "not an address";
    auto third = Session::create(io, settings, {});
    REQUIRE_FALSE(third.has_value());
    CHECK(third.error().code == Errc::network);
}

TEST_CASE("a seed whose payload is missing reports an error instead of finishing", "[net]") {
    TempDir tmp;
    const fs::path root = make_payload(tmp.path / "seed");
    auto torrent = create_torrent(root);
    REQUIRE(torrent.has_value());
    boost::asio::io_context io;

    auto seeder = make_node(io, "127.0.0.9", tmp.path / "resume");
    fs::create_directories(tmp.path / "empty");
    REQUIRE(seeder->session->add(add_params(*torrent, tmp.path / "empty", true)).has_value());
    REQUIRE(run_until(io, [&] { return !seeder->errors.empty(); }));
    CHECK(seeder->errors.front().find("seed data incomplete") != std::string::npos);
    CHECK(seeder->finished == 0);
    CHECK_FALSE(seeder->status("rel-1").finished);

    AddParams bad_id = add_params(*torrent, tmp.path / "x", false);
    bad_id.id = "../escape";
    CHECK(seeder->session->add(bad_id).error().code == Errc::invalid_argument);
    AddParams bad_peer = add_params(*torrent, tmp.path / "x", false, {"localhost"});
    bad_peer.id = "rel-2";
    CHECK(seeder->session->add(bad_peer).error().code == Errc::invalid_argument);
    AddParams garbage = add_params(*torrent, tmp.path / "x", false);
    garbage.id = "rel-3";
    garbage.torrent = {'d', 'e'};
    CHECK(seeder->session->add(garbage).error().code == Errc::malformed);
    CHECK_FALSE(seeder->session->status("rel-3").has_value());
}

TEST_CASE("an upload rate limit holds for peers on private addresses", "[net]") {
    TempDir tmp;
    const fs::path root = make_payload(tmp.path / "seed");
    auto torrent = create_torrent(root);
    REQUIRE(torrent.has_value());
    boost::asio::io_context io;

    // libtorrent's default peer classes exempt 127/8 (and every private range) from limits.
    constexpr int kLimit = 2 * 1024 * 1024;
    auto seeder = make_node(io, "127.0.0.10", tmp.path / "seeder-resume", kLimit);
    REQUIRE(seeder->session->add(add_params(*torrent, tmp.path / "seed", true)).has_value());
    REQUIRE(run_until(io, [&] { return seeder->finished == 1; }));

    auto leecher = make_node(io, "127.0.0.11", tmp.path / "leecher-resume");
    const auto start = std::chrono::steady_clock::now();
    REQUIRE(
        leecher->session
            ->add(add_params(*torrent, tmp.path / "dl", false, {endpoint("127.0.0.10", *seeder)}))
            .has_value());
    REQUIRE(run_until(io, [&] { return leecher->finished == 1; }));
    const auto elapsed = std::chrono::steady_clock::now() - start;
    // 4.3 MiB at 2 MiB/s: a little over 2 s; unlimited on loopback it takes a few hundred ms.
    CHECK(elapsed > 1500ms);
    CHECK(same_tree(root, tmp.path / "dl" / "payload"));
}

TEST_CASE("progress arrives as events with growing bytes until the torrent finishes", "[net]") {
    TempDir tmp;
    const fs::path root = make_payload(tmp.path / "seed");
    auto torrent = create_torrent(root);
    REQUIRE(torrent.has_value());
    boost::asio::io_context io;

    // A capped seeder, so that the download spans many progress requests.
    auto seeder = make_node(io, "127.0.0.20", tmp.path / "seeder-resume", 2 * 1024 * 1024);
    REQUIRE(seeder->session->add(add_params(*torrent, tmp.path / "seed", true)).has_value());
    REQUIRE(run_until(io, [&] { return seeder->finished == 1; }));

    auto leecher = make_node(io, "127.0.0.21", tmp.path / "leecher-resume", 0,
                             [](Settings& s) { s.seeder_addresses = {"127.0.0.20"}; });
    REQUIRE(
        leecher->session
            ->add(add_params(*torrent, tmp.path / "dl", false, {endpoint("127.0.0.20", *seeder)}))
            .has_value());
    // What the agent's timer does, only faster.
    boost::asio::steady_timer timer(io);
    std::function<void()> tick = [&] {
        leecher->session->request_progress();
        timer.expires_after(50ms);
        timer.async_wait([&](const boost::system::error_code& ec) {
            if (!ec) tick();
        });
    };
    tick();
    const auto finished_event = [&] {
        return !leecher->progress.empty() && leecher->progress.back().finished;
    };
    REQUIRE(run_until(io, [&] { return leecher->finished == 1 && finished_event(); }));
    timer.cancel();

    const std::vector<Status>& events = leecher->progress;
    bool in_between = false;
    bool had_peer = false;
    for (std::size_t i = 0; i < events.size(); ++i) {
        INFO("event " << i << ": " << events[i].total_done << " of " << events[i].total_wanted);
        CHECK(events[i].id == "rel-1");
        CHECK(events[i].total_wanted == kPayloadSize);
        if (i > 0) CHECK(events[i].total_done >= events[i - 1].total_done);
        if (events[i].total_done > 0 && events[i].total_done < kPayloadSize) {
            in_between = true;
            CHECK(events[i].state == TorrentState::downloading);
            CHECK_FALSE(events[i].finished);
        }
        had_peer = had_peer || events[i].num_peers > 0;
    }
    CHECK(in_between);
    CHECK(had_peer);
    const Status& last = events.back();
    CHECK(last.state == TorrentState::seeding);
    CHECK(last.total_done == kPayloadSize);
    CHECK(last.progress == Approx(1.0));
    CHECK(last.bytes_from_seeder == kPayloadSize);
    CHECK(last.bytes_from_outside_site + last.bytes_from_lan == kPayloadSize);
    CHECK(last.error.empty());
    // The event and the synchronous call agree.
    const Status now = leecher->status("rel-1");
    CHECK(now.total_done == last.total_done);
    CHECK(now.bytes_from_seeder == last.bytes_from_seeder);
    CHECK(now.state == last.state);
    CHECK(same_tree(root, tmp.path / "dl" / "payload"));
}

// An endpoint of site 127.0.2.0/24: WAN peers capped each way, its own site uncapped.
void site_endpoint(Settings& s, int wan_limit) {
    s.site_ranges = {"127.0.2.0/24"};
    s.peer_classes = {{"wan", {"0.0.0.0/0", "::/0"}, wan_limit, wan_limit, false},
                      {"lan", {"127.0.2.0/24"}, 0, 0, true}};
}

TEST_CASE("a WAN peer class caps private addresses, and bytes split into LAN and WAN", "[net]") {
    TempDir tmp;
    const fs::path root = make_payload(tmp.path / "seed");
    auto torrent = create_torrent(root);
    REQUIRE(torrent.has_value());
    boost::asio::io_context io;

    // Another site's endpoint holds the payload (not the seeder: seeder_addresses is 127.0.0.1).
    auto remote = make_node(io, "127.0.3.10", tmp.path / "remote-resume");
    REQUIRE(remote->session->add(add_params(*torrent, tmp.path / "seed", true)).has_value());
    REQUIRE(run_until(io, [&] { return remote->finished == 1; }));

    constexpr int kWanLimit = 2 * 1024 * 1024;
    auto local = make_node(io, "127.0.2.11", tmp.path / "local-resume", 0,
                           [](Settings& s) { site_endpoint(s, kWanLimit); });
    const auto start = std::chrono::steady_clock::now();
    REQUIRE(
        local->session
            ->add(add_params(*torrent, tmp.path / "l1", false, {endpoint("127.0.3.10", *remote)}))
            .has_value());
    REQUIRE(run_until(io, [&] { return local->finished == 1; }));
    // 4.3 MiB at 2 MiB/s: over 2 s, where loopback alone takes a few hundred ms.
    CHECK(std::chrono::steady_clock::now() - start > 1500ms);
    const Status wan = local->status("rel-1");
    CHECK(wan.bytes_from_peers == kPayloadSize);
    CHECK(wan.bytes_from_outside_site == kPayloadSize);
    CHECK(wan.bytes_from_lan == 0);

    // A neighbour in the same site fills from it: every byte is LAN.
    auto neighbour = make_node(io, "127.0.2.12", tmp.path / "neighbour-resume", 0,
                               [](Settings& s) { site_endpoint(s, kWanLimit); });
    REQUIRE(
        neighbour->session
            ->add(add_params(*torrent, tmp.path / "l2", false, {endpoint("127.0.2.11", *local)}))
            .has_value());
    REQUIRE(run_until(io, [&] { return neighbour->finished == 1; }));
    const Status lan = neighbour->status("rel-1");
    CHECK(lan.bytes_from_lan == kPayloadSize);
    CHECK(lan.bytes_from_outside_site == 0);
    CHECK(same_tree(root, tmp.path / "l2" / "payload"));
}

TEST_CASE("a session refuses peer classes or site ranges that are not CIDRs", "[net]") {
    TempDir tmp;
    boost::asio::io_context io;
    for (const auto& tweak : std::vector<std::function<void(Settings&)>>{
             [](Settings& s) { s.site_ranges = {"127.0.2.1/24"}; },
             [](Settings& s) {
                 s.peer_classes = {{"x", {"not-a-range"}, 1, 1, false}};
             },
             [](Settings& s) {
                 s.peer_classes.resize(kMaxPeerClasses + 1, {"x", {}, 0, 0, false});
             },
         }) {
        Settings settings;
        settings.listen = "127.0.2.30:0";
        settings.resume_dir = tmp.path / "resume";
        settings.enable_lsd = false;
        tweak(settings);
        auto session = Session::create(io, std::move(settings), {});
        REQUIRE_FALSE(session.has_value());
        CHECK(session.error().code == Errc::invalid_argument);
    }
}
