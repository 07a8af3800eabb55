// libtorrent adapter. The only translation unit that includes libtorrent headers.
#include "io/swarm/swarm.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <cstdio>
#include <libtorrent/add_torrent_params.hpp>
#include <libtorrent/alert_types.hpp>
#include <libtorrent/bdecode.hpp>
#include <libtorrent/bencode.hpp>
#include <libtorrent/create_torrent.hpp>
#include <libtorrent/error_code.hpp>
#include <libtorrent/file_storage.hpp>
#include <libtorrent/ip_filter.hpp>
#include <libtorrent/posix_disk_io.hpp>
#include <libtorrent/read_resume_data.hpp>
#include <libtorrent/session.hpp>
#include <libtorrent/session_params.hpp>
#include <libtorrent/settings_pack.hpp>
#include <libtorrent/torrent_handle.hpp>
#include <libtorrent/torrent_info.hpp>
#include <libtorrent/torrent_status.hpp>
#include <libtorrent/write_resume_data.hpp>
#include <map>
#include <set>
#include <system_error>
#include <unordered_map>
#include <utility>

#include "core/manifest.hpp"
#include "core/sites.hpp"
#include "io/fs.hpp"
#include "io/x509.hpp"

namespace patchswarm::io::swarm {

namespace {

// "http://user:secret@host/..." -> "http://***@host/...": web seed URLs carry an endpoint's
// credentials, and libtorrent's messages quote them.
std::string without_userinfo(std::string text) {
    for (std::size_t from = 0;;) {
        const auto scheme = text.find("://", from);
        if (scheme == std::string::npos) return text;
        const auto start = scheme + 3;
        const auto end = text.find_first_of("/ \t\r\n", start);
        const auto at = text.find('@', start);
        if (at != std::string::npos && (end == std::string::npos || at < end)) {
            text.replace(start, at - start, "***");
        }
        from = start;
    }
}

namespace fs = std::filesystem;

// Bounds for untrusted .torrent files. A release is at most a few GiB; with v2's 16 KiB minimum
// piece size the piece layers of such a torrent stay well below 64 MiB.
constexpr int kMaxTorrentBytes = 64 * 1024 * 1024;
constexpr int kMaxPieces = 1 << 21;
constexpr int kMaxDecodeDepth = 100;
constexpr int kMaxDecodeTokens = 3'000'000;
constexpr std::size_t kMaxResumeBytes = 128 * 1024 * 1024;
constexpr int kBlockSize = 16 * 1024;

std::string to_hex(const lt::sha256_hash& h) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(64);
    for (char c : h) {
        const auto b = static_cast<unsigned char>(c);
        out.push_back(digits[b >> 4]);
        out.push_back(digits[b & 0xf]);
    }
    return out;
}

// Settings against hostile peers and URLs (docs/SECURITY.md), set explicitly so that neither a
// libtorrent upgrade nor a default we misread weakens them.
void harden(lt::settings_pack& pack) {
    // Web seed and tracker URLs come from signed torrents, but a redirect or a peer's claim must
    // not make us talk to local services: libtorrent's SSRF checks (no query strings towards
    // local addresses, no redirects to them), no internationalised host names (look-alikes), no
    // outgoing peer connections to privileged ports (a peer list naming 22 or 25).
    pack.set_bool(lt::settings_pack::ssrf_mitigation, true);
    pack.set_bool(lt::settings_pack::allow_idna, false);
    pack.set_bool(lt::settings_pack::no_connect_privileged_ports, true);
    pack.set_bool(lt::settings_pack::validate_https_trackers, true);
    // Bounded peer bookkeeping: a tracker or peer flooding us with addresses fills a fixed table.
    pack.set_int(lt::settings_pack::connections_limit, 400);
    pack.set_int(lt::settings_pack::max_peerlist_size, 2000);
    pack.set_int(lt::settings_pack::max_paused_peerlist_size, 500);
    // Requests a peer may queue with us.
    pack.set_int(lt::settings_pack::max_allowed_in_request_queue, 2000);
    // We always hold the torrent file: metadata from peers (ut_metadata) is never needed, so
    // what a peer offers is capped like our own torrent files are.
    pack.set_int(lt::settings_pack::max_metadata_size, 1 << 20);
    pack.set_int(lt::settings_pack::max_piece_count, kMaxPieces);
    pack.set_int(lt::settings_pack::metadata_token_limit, kMaxDecodeTokens);
}

lt::load_torrent_limits torrent_limits() {
    lt::load_torrent_limits limits;
    limits.max_buffer_size = kMaxTorrentBytes;
    limits.max_pieces = kMaxPieces;
    limits.max_decode_depth = kMaxDecodeDepth;
    limits.max_decode_tokens = kMaxDecodeTokens;
    return limits;
}

// libtorrent 2.0 has no constructor taking both load limits and an error_code: decode with the
// error_code overload of bdecode (which enforces depth and token limits), then build the
// torrent_info from the node with the limits; that one reports failure by throwing.
Result<std::shared_ptr<const lt::torrent_info>> parse_torrent(
    const std::vector<std::uint8_t>& bytes) {
    const lt::load_torrent_limits limits = torrent_limits();
    if (bytes.size() > static_cast<std::size_t>(limits.max_buffer_size)) {
        return fail(Errc::too_large,
                    "torrent larger than " + std::to_string(limits.max_buffer_size) + " bytes");
    }
    const lt::span<const char> buf(reinterpret_cast<const char*>(bytes.data()),
                                   static_cast<std::ptrdiff_t>(bytes.size()));
    lt::error_code ec;
    int error_pos = 0;
    lt::bdecode_node root =
        lt::bdecode(buf, ec, &error_pos, limits.max_decode_depth, limits.max_decode_tokens);
    if (ec) {
        const bool limit =
            ec == lt::bdecode_errors::depth_exceeded || ec == lt::bdecode_errors::limit_exceeded;
        return fail(limit ? Errc::too_large : Errc::malformed,
                    "torrent: " + ec.message() + " at byte " + std::to_string(error_pos));
    }
    try {
        return std::make_shared<const lt::torrent_info>(root, limits);
    } catch (const lt::system_error& e) {
        const bool limit = e.code() == lt::errors::too_many_pieces_in_torrent;
        return fail(limit ? Errc::too_large : Errc::malformed,
                    std::string("torrent: ") + e.code().message());
    } catch (const std::exception& e) {
        return fail(Errc::malformed, std::string("torrent: ") + e.what());
    }
}

// Builds the project summary of a parsed torrent and applies our own checks on top of
// libtorrent's (which already sanitises path elements but would quietly rewrite rather than
// refuse them).
Result<TorrentSummary> summarize(const lt::torrent_info& ti,
                                 const std::vector<std::uint8_t>& bytes) {
    if (!ti.info_hashes().has_v2()) {
        return fail(Errc::malformed, "torrent has no v2 info-hash (BitTorrent v1 only)");
    }
    const lt::file_storage& files = ti.files();
    TorrentSummary out;
    out.bytes = bytes;
    out.infohash_v2 = to_hex(ti.info_hashes().v2);
    out.ssl_root_cert = std::string(ti.ssl_cert());
    out.name = ti.name();
    if (auto ok = core::validate_relative_path(out.name); !ok) {
        return fail(Errc::unsafe_path, "torrent name: " + ok.error().message);
    }
    if (out.name.find('/') != std::string::npos) {
        return fail(Errc::unsafe_path, "torrent name has more than one component");
    }

    std::vector<lt::file_index_t> real_files;
    for (const lt::file_index_t i : files.file_range()) {
        const auto flags = files.file_flags(i);
        if (flags & lt::file_storage::flag_pad_file) continue;
        if (flags & lt::file_storage::flag_symlink) {
            return fail(Errc::unsafe_path, "torrent contains a symlink: " + files.file_path(i));
        }
        real_files.push_back(i);
    }
    if (real_files.empty()) return fail(Errc::malformed, "torrent has no files");

    // A single-file torrent stores the file under the torrent name itself; anything else is a
    // folder whose paths start with "<name>/".
    out.single_file = real_files.size() == 1 && files.file_path(real_files.front()) == out.name;
    const std::string prefix = out.name + "/";
    for (const lt::file_index_t i : real_files) {
        std::string path = files.file_path(i);
        if (!out.single_file) {
            if (!path.starts_with(prefix)) {
                return fail(Errc::unsafe_path, "torrent file outside its folder: " + path);
            }
            path.erase(0, prefix.size());
        }
        if (auto ok = core::validate_relative_path(path); !ok) {
            return fail(Errc::unsafe_path, "torrent file path: " + ok.error().message);
        }
        out.files.push_back({std::move(path), static_cast<std::uint64_t>(files.file_size(i))});
    }
    std::sort(out.files.begin(), out.files.end(),
              [](const TorrentFile& a, const TorrentFile& b) { return a.path < b.path; });
    for (std::size_t k = 1; k < out.files.size(); ++k) {
        if (out.files[k].path == out.files[k - 1].path) {
            return fail(Errc::unsafe_path, "torrent lists a file twice: " + out.files[k].path);
        }
    }
    return out;
}

// add_files() would follow symlinks (or, with a flag, record them); a payload is only regular
// files and folders, so anything else is refused before libtorrent sees it.
Result<void> check_payload_tree(const fs::path& root) {
    std::error_code ec;
    const auto st = fs::symlink_status(root, ec);
    if (ec) return fail(Errc::not_found, "payload " + root.string() + ": " + ec.message());
    if (fs::is_symlink(st))
        return fail(Errc::unsafe_path, "payload is a symlink: " + root.string());
    if (fs::is_regular_file(st)) return {};
    if (!fs::is_directory(st)) {
        return fail(Errc::unsafe_path, "payload is not a file or folder: " + root.string());
    }
    fs::recursive_directory_iterator it(root, fs::directory_options::none, ec);
    if (ec) return fail(Errc::io, "payload " + root.string() + ": " + ec.message());
    std::size_t regular = 0;
    for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (ec) return fail(Errc::io, "payload " + root.string() + ": " + ec.message());
        const auto s = it->symlink_status(ec);
        if (ec) return fail(Errc::io, it->path().string() + ": " + ec.message());
        if (fs::is_symlink(s))
            return fail(Errc::unsafe_path, "symlink in payload: " + it->path().string());
        if (fs::is_regular_file(s)) {
            ++regular;
        } else if (!fs::is_directory(s)) {
            return fail(Errc::unsafe_path, "special file in payload: " + it->path().string());
        }
    }
    if (ec) return fail(Errc::io, "payload " + root.string() + ": " + ec.message());
    if (regular == 0) return fail(Errc::invalid_argument, "payload folder has no files");
    return {};
}

// "1.2.3.4:5" or "[::1]:5".
std::optional<lt::tcp::endpoint> parse_endpoint(const std::string& text) {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0) return std::nullopt;
    std::string host = text.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    const std::string port_text = text.substr(colon + 1);
    if (port_text.empty() || port_text.size() > 5 ||
        !std::all_of(port_text.begin(), port_text.end(),
                     [](char c) { return c >= '0' && c <= '9'; })) {
        return std::nullopt;
    }
    const int port = std::stoi(port_text);
    if (port == 0 || port > 65535) return std::nullopt;
    boost::system::error_code ec;
    const auto address = boost::asio::ip::make_address(host, ec);
    if (ec) return std::nullopt;
    return lt::tcp::endpoint(address, static_cast<std::uint16_t>(port));
}

std::string endpoint_string(const lt::tcp::endpoint& ep) {
    const auto address = ep.address();
    if (address.is_v6()) return "[" + address.to_string() + "]:" + std::to_string(ep.port());
    return address.to_string() + ":" + std::to_string(ep.port());
}

// The host part of a listen string, if it names one specific address.
std::optional<std::string> listen_host(const std::string& listen) {
    const auto colon = listen.rfind(':');
    if (colon == std::string::npos) return std::nullopt;
    std::string host = listen.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    boost::system::error_code ec;
    const auto address = boost::asio::ip::make_address(host, ec);
    if (ec || address.is_unspecified()) return std::nullopt;
    return host;
}

// Ids become file names in resume_dir.
bool safe_id(const std::string& id) {
    if (id.empty() || id.size() > 128 || id == "." || id == "..") return false;
    return std::all_of(id.begin(), id.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u > 0x20 && u < 0x7f && c != '/' && c != '\\';
    });
}

bool is_checking(lt::torrent_status::state_t s) {
    return s == lt::torrent_status::checking_files || s == lt::torrent_status::checking_resume_data;
}

// State the alert-notify callback may touch from libtorrent's thread. It outlives the session
// object if a handler is still queued on the io_context when the Session goes away.
struct Pump {
    std::atomic<bool> alive{true};
};

class SessionImpl final : public Session {
  public:
    SessionImpl(boost::asio::io_context& io, Settings settings, Callbacks callbacks)
        : io_(io), settings_(std::move(settings)), callbacks_(std::move(callbacks)) {}

    ~SessionImpl() override {
        pump_->alive = false;
        if (session_) {
            session_->set_alert_notify([] {});
            // Tracker "stopped" announces are bounded by stop_tracker_timeout.
            session_.reset();
        }
    }

    Result<void> start() {
        std::error_code fec;
        fs::create_directories(settings_.resume_dir, fec);
        if (fec) {
            return fail(Errc::io,
                        "resume dir " + settings_.resume_dir.string() + ": " + fec.message());
        }
        for (const auto& a : settings_.seeder_addresses) {
            boost::system::error_code ec;
            const auto address = boost::asio::ip::make_address(a, ec);
            if (ec) return fail(Errc::invalid_argument, "seeder address is not an IP: " + a);
            seeder_addresses_.insert(address);
        }
        for (const auto& text : settings_.site_ranges) {
            auto cidr = core::parse_cidr(text);
            if (!cidr) return fail(Errc::invalid_argument, "site range: " + cidr.error().message);
            site_ranges_.push_back(*cidr);
        }
        if (settings_.peer_classes.size() > kMaxPeerClasses) {
            return fail(Errc::invalid_argument,
                        "at most " + std::to_string(kMaxPeerClasses) + " peer classes");
        }

        if (!settings_.ssl_certificate.empty()) {
            auto dh = io::x509::dh_params_pem();
            if (!dh) return std::unexpected(dh.error());
            dh_params_ = std::move(*dh);
        }

        lt::settings_pack pack;
        // An "s" suffix makes a listen socket TLS: SSL torrents accept peers only there.
        pack.set_str(lt::settings_pack::listen_interfaces,
                     settings_.ssl_listen.empty()
                         ? settings_.listen
                         : settings_.listen + "," + settings_.ssl_listen + "s");
        // Each endpoint has its own address (one 127.0.0.x per session in tests, one host per
        // address in the lab); bind outgoing connections to it so peers see who we are.
        if (auto host = listen_host(settings_.listen)) {
            pack.set_str(lt::settings_pack::outgoing_interfaces, *host);
        }
        // An explicit port must be that port, not "the next free one" nor, failing that, one the
        // kernel picks (libtorrent's defaults): peers, the tracker and the LSD all expect it.
        pack.set_int(lt::settings_pack::max_retry_port_bind, 0);
        pack.set_bool(lt::settings_pack::listen_system_port_fallback, false);
        // TCP only: uTP on loopback stalled a transfer for a whole minute in one run of 10 to 30
        // ("peer snubbed", then nothing), and its LEDBAT back-off only slows a LAN down.
        pack.set_bool(lt::settings_pack::enable_outgoing_utp, false);
        pack.set_bool(lt::settings_pack::enable_incoming_utp, false);
        pack.set_bool(lt::settings_pack::enable_dht, false);
        pack.set_bool(lt::settings_pack::enable_lsd, settings_.enable_lsd);
        pack.set_bool(lt::settings_pack::enable_upnp, false);
        pack.set_bool(lt::settings_pack::enable_natpmp, false);
        // libtorrent's default (one connection per address) kept on purpose: with it on, a peer
        // banned for a corrupt piece came straight back from a new port and sent it again.
        // Every endpoint has its own address (FACTS: sessions sharing one address starve).
        pack.set_bool(lt::settings_pack::allow_multiple_connections_per_ip, false);
        pack.set_int(lt::settings_pack::min_reconnect_time, settings_.min_reconnect_time_s);
        // Keep connections to peers that finished. libtorrent drops an "uninteresting upload-only
        // peer" the moment it turns seed, racing with that peer's last HAVE messages: in the lab
        // every endpoint of a site lost its gateway just as it completed and waited for a
        // reconnect (min_reconnect_time, ~2 s) to fetch the last pieces. A few idle connections
        // per site cost nothing.
        pack.set_bool(lt::settings_pack::close_redundant_connections, false);
        pack.set_int(lt::settings_pack::stop_tracker_timeout, 2);
        // Honour the tracker's interval (30 s for downloaders, 5 min for seeds: see
        // seeder/tracker.hpp) down to its min interval; libtorrent's default floor of 5 min
        // would let the tracker's table drop a downloader between two of its announces.
        pack.set_int(lt::settings_pack::min_announce_interval, 15);
        pack.set_str(lt::settings_pack::user_agent, "patchswarm/0.1");
        pack.set_int(
            lt::settings_pack::alert_mask,
            static_cast<int>(static_cast<std::uint32_t>(
                lt::alert_category::status | lt::alert_category::error | lt::alert_category::peer |
                lt::alert_category::storage | lt::alert_category::piece_progress |
                lt::alert_category::block_progress | lt::alert_category::connect)));
        // One block_finished alert per 16 KiB: a dropped alert is a byte we cannot attribute.
        pack.set_int(lt::settings_pack::alert_queue_size, 200'000);
        pack.set_int(lt::settings_pack::upload_rate_limit, settings_.upload_rate_limit);
        pack.set_int(lt::settings_pack::download_rate_limit, settings_.download_rate_limit);
        harden(pack);

        lt::session_params params(std::move(pack));
        params.disk_io_constructor = lt::posix_disk_io_constructor;
        try {
            session_ = std::make_unique<lt::session>(std::move(params));
        } catch (const std::exception& e) {
            return fail(Errc::network, std::string("libtorrent session: ") + e.what());
        }

        if (auto ok = apply_peer_classes(); !ok) return ok;

        // Listen sockets are opened during start-up on the network thread; this synchronous
        // call is queued behind that.
        if (!session_->is_listening()) {
            return fail(Errc::network, "cannot listen on " + settings_.listen);
        }
        if (!settings_.ssl_listen.empty() && session_->ssl_listen_port() == 0) {
            return fail(Errc::network, "cannot listen (SSL) on " + settings_.ssl_listen);
        }

        std::weak_ptr<Pump> weak = pump_;
        auto self = this;
        boost::asio::io_context* io = &io_;
        session_->set_alert_notify([weak, self, io] {
            // libtorrent's thread: only hop to the io_context, where `self` is checked.
            auto pump = weak.lock();
            if (!pump || !pump->alive) return;
            boost::asio::post(*io, [pump, self] {
                if (pump->alive) self->drain_alerts();
            });
        });
        // The notify fires only when the queue goes from empty to non-empty: alerts posted
        // before it was installed (listen sockets) would otherwise block every later one.
        boost::asio::post(io_, [pump = pump_, self = this] {
            if (pump->alive) self->drain_alerts();
        });
        return {};
    }

    // The default peer-class filter puts every private address in the "local" class, which the
    // rate limits skip; in a LAN every peer is private, so a limit must cover them all, and a
    // configured class must take its ranges out of "local".
    Result<void> apply_peer_classes() {
        const bool global_limits =
            settings_.upload_rate_limit > 0 || settings_.download_rate_limit > 0;
        if (!global_limits && settings_.peer_classes.empty()) return {};
        const auto global = 1u << static_cast<std::uint32_t>(lt::session::global_peer_class_id);
        lt::ip_filter classes;
        if (global_limits) {
            classes.add_rule(boost::asio::ip::make_address("0.0.0.0"),
                             boost::asio::ip::make_address("255.255.255.255"), global);
            classes.add_rule(
                boost::asio::ip::make_address("::"),
                boost::asio::ip::make_address("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), global);
        } else {
            classes = session_->get_peer_class_filter();  // keeps "local" for other ranges
        }
        for (const auto& spec : settings_.peer_classes) {
            std::vector<core::Cidr> ranges;
            for (const auto& text : spec.cidrs) {
                auto cidr = core::parse_cidr(text);
                if (!cidr) {
                    return fail(Errc::invalid_argument,
                                "peer class " + spec.name + ": " + cidr.error().message);
                }
                ranges.push_back(*cidr);
            }
            const lt::peer_class_t id = session_->create_peer_class(spec.name.c_str());
            lt::peer_class_info info = session_->get_peer_class(id);
            info.upload_limit = spec.upload_limit;
            info.download_limit = spec.download_limit;
            info.ignore_unchoke_slots = spec.always_unchoke;
            session_->set_peer_class(id, info);
            const std::uint32_t flags = global | (1u << static_cast<std::uint32_t>(id));
            for (const auto& r : ranges) {
                classes.add_rule(to_asio(r.first()), to_asio(r.last()), flags);
            }
            spdlog::debug("swarm {}: peer class {} (up {} B/s, down {} B/s) for {} range(s)",
                          settings_.listen, spec.name, spec.upload_limit, spec.download_limit,
                          ranges.size());
        }
        session_->set_peer_class_filter(classes);
        return {};
    }

    static boost::asio::ip::address to_asio(const core::IpAddress& a) {
        if (a.v6) return boost::asio::ip::address_v6(a.bytes);
        return boost::asio::ip::address_v4(boost::asio::ip::address_v4::bytes_type{
            a.bytes[0], a.bytes[1], a.bytes[2], a.bytes[3]});
    }

    // Inside this endpoint's site? Without configured ranges every peer is.
    bool in_site(const boost::asio::ip::address& address) const {
        if (site_ranges_.empty()) return true;
        const auto ip = core::parse_ip(address.to_string());
        if (!ip) return false;
        return std::any_of(site_ranges_.begin(), site_ranges_.end(),
                           [&](const core::Cidr& r) { return r.contains(*ip); });
    }

    Result<void> add(AddParams p) override {
        if (!safe_id(p.id)) return fail(Errc::invalid_argument, "unusable release id: " + p.id);
        if (entries_.contains(p.id)) return fail(Errc::already_exists, "already added: " + p.id);
        auto parsed = parse_torrent(p.torrent);
        if (!parsed) return std::unexpected(parsed.error());
        if (auto summary = summarize(**parsed, p.torrent); !summary) {
            return std::unexpected(summary.error());
        }
        // Our copy, so the torrent's own trackers and web seeds can be dropped.
        auto ti = std::make_shared<lt::torrent_info>(**parsed);
        ti->clear_trackers();
        ti->set_web_seeds({});

        std::vector<lt::tcp::endpoint> peers;
        for (const auto& text : p.peers) {
            auto ep = parse_endpoint(text);
            if (!ep) return fail(Errc::invalid_argument, "peer is not ip:port: " + text);
            peers.push_back(*ep);
        }

        lt::add_torrent_params atp;
        if (auto resume = read_resume(p.id, *ti)) atp = std::move(*resume);
        atp.ti = ti;
        atp.info_hashes = ti->info_hashes();
        atp.name.clear();
        atp.save_path = p.save_path.string();
        // auto_managed|paused would start the torrent only at the next tick, and a peer that
        // connects in between waits min_reconnect_time.
        atp.flags = lt::torrent_flags::default_flags & ~lt::torrent_flags::auto_managed &
                    ~lt::torrent_flags::paused;
        if (!settings_.peer_exchange) atp.flags |= lt::torrent_flags::disable_pex;
        atp.trackers = p.trackers;
        atp.tracker_tiers.clear();
        atp.url_seeds = p.web_seeds;
        atp.dht_nodes.clear();
        atp.storage_mode = lt::storage_mode_sparse;

        lt::error_code ec;
        lt::torrent_handle h = session_->add_torrent(std::move(atp), ec);
        if (ec) {
            if (ec == lt::errors::duplicate_torrent) {
                return fail(Errc::already_exists, "torrent already added under another id");
            }
            return fail(Errc::internal, "add_torrent: " + ec.message());
        }
        Entry entry;
        entry.handle = h;
        entry.ti = ti;
        entry.seed = p.seed;
        entries_.emplace(p.id, std::move(entry));
        ids_[h] = p.id;
        if (!ti->ssl_cert().empty()) {
            if (settings_.ssl_certificate.empty()) {
                spdlog::warn("swarm {}: SSL torrent but no certificate (not enrolled): no peers",
                             p.id);
            } else {
                set_certificate(h);
            }
        }
        for (const auto& ep : peers) h.connect_peer(ep);

        // A torrent that is complete the moment it is added (nothing to check) may post no
        // state change; look once, on the io_context so the callback does not run inside add().
        boost::asio::post(io_, [pump = pump_, self = this, id = p.id] {
            if (pump->alive) self->check_finished(id);
        });
        return {};
    }

    void remove(const std::string& id) override {
        auto it = entries_.find(id);
        if (it == entries_.end()) return;
        ids_.erase(it->second.handle);
        if (it->second.resume_pending > 0) outstanding_resume_ -= it->second.resume_pending;
        session_->remove_torrent(it->second.handle);
        entries_.erase(it);
    }

    void force_recheck(const std::string& id) override {
        auto* e = find(id);
        if (!e) return;
        // A recheck that ends complete is a new "finished" worth reporting.
        e->finished_notified = false;
        e->handle.force_recheck();
    }

    void add_web_seed(const std::string& id, const std::string& url) override {
        if (auto* e = find(id)) {
            e->handle.remove_url_seed(url);
            e->handle.add_url_seed(url);
        }
    }

    void remove_web_seed(const std::string& id, const std::string& url) override {
        if (auto* e = find(id)) e->handle.remove_url_seed(url);
    }

    void connect_peer(const std::string& id, const std::string& endpoint) override {
        auto* e = find(id);
        if (!e) return;
        if (auto ep = parse_endpoint(endpoint)) {
            e->handle.connect_peer(*ep);
        } else {
            spdlog::warn("swarm {}: ignoring peer that is not ip:port: {}", id, endpoint);
        }
    }

    std::optional<Status> status(const std::string& id) const override {
        auto it = entries_.find(id);
        if (it == entries_.end()) return std::nullopt;
        return make_status(it->first, it->second);
    }

    std::vector<Status> status_all() const override {
        std::vector<Status> out;
        out.reserve(entries_.size());
        for (const auto& [id, e] : entries_) out.push_back(make_status(id, e));
        return out;
    }

    void save_resume_data() override {
        for (auto& [id, e] : entries_) request_resume(e, lt::torrent_handle::only_if_modified);
    }

    void save_resume_data_and_wait(std::chrono::milliseconds timeout) override {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (auto& [id, e] : entries_) request_resume(e, lt::torrent_handle::only_if_modified);
        // Called from a callback: the batch being handled cannot be popped under it, so the
        // answers are written later by the normal pump.
        if (draining_) return;
        while (outstanding_resume_ > 0) {
            const auto now = std::chrono::steady_clock::now();
            if (now >= deadline) {
                spdlog::warn("swarm: gave up waiting for {} resume data answers",
                             outstanding_resume_);
                return;
            }
            const auto left = std::chrono::duration_cast<lt::time_duration>(deadline - now);
            session_->wait_for_alert(left);
            drain_alerts();
        }
    }

    std::uint16_t listen_port() const override { return session_->listen_port(); }
    std::uint16_t ssl_listen_port() const override {
        return settings_.ssl_listen.empty() ? 0 : session_->ssl_listen_port();
    }

    void set_ssl_identity(const std::string& cert_pem, const std::string& key_pem) override {
        settings_.ssl_certificate = cert_pem;
        settings_.ssl_private_key = key_pem;
        for (auto& [id, entry] : entries_) {
            if (!entry.ti->ssl_cert().empty()) set_certificate(entry.handle);
        }
    }

    void set_certificate(lt::torrent_handle h) {
        h.set_ssl_certificate_buffer(settings_.ssl_certificate, settings_.ssl_private_key,
                                     dh_params_);
    }

  private:
    // Bytes of one block, held until the piece passes its hash check.
    enum class Source { seeder, lan_peer, outside_peer };
    struct PendingBlock {
        Source source = Source::lan_peer;
        std::uint64_t bytes = 0;
        std::string peer;
    };

    struct Entry {
        lt::torrent_handle handle;
        std::shared_ptr<const lt::torrent_info> ti;
        std::uint64_t bytes_from_peers = 0;
        std::uint64_t bytes_from_seeder = 0;
        std::uint64_t bytes_from_outside_peers = 0;          // part of bytes_from_peers
        std::map<int, std::map<int, PendingBlock>> pending;  // piece -> block -> source
        bool seed = false;  // added as a seed: the check must find every piece
        bool finished_notified = false;
        int resume_pending = 0;
    };

    Entry* find(const std::string& id) {
        auto it = entries_.find(id);
        return it == entries_.end() ? nullptr : &it->second;
    }

    const std::string* id_of(const lt::torrent_handle& h) const {
        auto it = ids_.find(h);
        return it == ids_.end() ? nullptr : &it->second;
    }

    Status make_status(const std::string& id, const Entry& e) const {
        Status s;
        s.id = id;
        s.bytes_from_peers = e.bytes_from_peers;
        s.bytes_from_seeder = e.bytes_from_seeder;
        s.bytes_from_lan = e.bytes_from_peers - e.bytes_from_outside_peers;
        s.bytes_from_outside_site = e.bytes_from_seeder + e.bytes_from_outside_peers;
        const lt::torrent_status ts = e.handle.status();
        s.total_wanted = static_cast<std::uint64_t>(std::max<std::int64_t>(0, ts.total_wanted));
        s.total_done = static_cast<std::uint64_t>(std::max<std::int64_t>(0, ts.total_wanted_done));
        s.progress = s.total_wanted > 0
                         ? static_cast<double>(s.total_done) / static_cast<double>(s.total_wanted)
                         : (ts.is_finished ? 1.0 : 0.0);
        s.total_uploaded =
            static_cast<std::uint64_t>(std::max<std::int64_t>(0, ts.total_payload_upload));
        s.download_rate = ts.download_payload_rate;
        s.upload_rate = ts.upload_payload_rate;
        s.num_peers = ts.num_peers;
        s.checking = is_checking(ts.state);
        s.finished = ts.is_finished && !s.checking && !ts.errc;
        if (ts.errc) {
            s.error = ts.errc.message();
            if (ts.error_file >= lt::file_index_t{0} && ts.error_file < e.ti->files().end_file()) {
                s.error += " (" + e.ti->files().file_path(ts.error_file) + ")";
            }
        }
        return s;
    }

    std::optional<lt::add_torrent_params> read_resume(const std::string& id,
                                                      const lt::torrent_info& ti) {
        const fs::path path = settings_.resume_dir / (id + ".resume");
        std::error_code fec;
        if (!fs::exists(path, fec)) return std::nullopt;
        auto data = read_file(path, kMaxResumeBytes);
        if (!data) {
            spdlog::warn("swarm {}: ignoring resume data: {}", id, data.error().message);
            return std::nullopt;
        }
        lt::error_code ec;
        lt::add_torrent_params atp = lt::read_resume_data(
            lt::span<const char>(data->data(), static_cast<std::ptrdiff_t>(data->size())), ec,
            torrent_limits());
        if (ec) {
            spdlog::warn("swarm {}: ignoring unreadable resume data: {}", id, ec.message());
            return std::nullopt;
        }
        // Resume data of another torrent (a replaced release) would make libtorrent fail the add.
        if (atp.info_hashes.has_v2() && atp.info_hashes.v2 != ti.info_hashes().v2) {
            spdlog::warn("swarm {}: ignoring resume data of another torrent", id);
            return std::nullopt;
        }
        atp.ti.reset();
        return atp;
    }

    void request_resume(Entry& e, lt::resume_data_flags_t flags) {
        e.handle.save_resume_data(flags | lt::torrent_handle::flush_disk_cache);
        ++e.resume_pending;
        ++outstanding_resume_;
    }

    void resume_answered(Entry& e) {
        if (e.resume_pending > 0) {
            --e.resume_pending;
            --outstanding_resume_;
        }
    }

    void notify_finished(const std::string& id) {
        auto* e = find(id);
        if (!e || e->finished_notified) return;
        e->finished_notified = true;
        request_resume(*e, {});
        if (callbacks_.on_finished) callbacks_.on_finished(id);
    }

    void check_finished(const std::string& id) {
        auto* e = find(id);
        if (!e || e->finished_notified) return;
        const auto ts = e->handle.status();
        if (ts.is_finished && !is_checking(ts.state) && !ts.errc) notify_finished(id);
    }

    void on_checked(const std::string& id) {
        auto* e = find(id);
        if (!e) return;
        if (e->seed) {
            // A seeder whose payload is missing or damaged would quietly start downloading it
            // from its own endpoints; say so.
            const auto ts = e->handle.status();
            if (!ts.is_finished && !ts.errc) {
                const auto percent = static_cast<int>(ts.progress * 100);
                report_error(e->handle, "seed data incomplete after check (" +
                                            std::to_string(percent) + "% present)");
                e = find(id);
                if (!e) return;
            }
        }
        check_finished(id);
    }

    void on_block(const lt::block_finished_alert& a) {
        const auto* idp = id_of(a.handle);
        if (!idp) return;
        auto* e = find(*idp);
        const lt::file_storage& files = e->ti->files();
        if (a.piece_index < lt::piece_index_t{0} || a.piece_index >= files.end_piece()) return;
        const std::int64_t offset = std::int64_t{a.block_index} * kBlockSize;
        const std::int64_t piece_size = files.piece_size(a.piece_index);
        if (offset < 0 || offset >= piece_size) return;
        const int size = static_cast<int>(std::min<std::int64_t>(kBlockSize, piece_size - offset));
        // Pad bytes (v2 aligns every file to a piece) are not payload.
        std::uint64_t payload = 0;
        for (const auto& slice : files.map_block(a.piece_index, offset, size)) {
            if (!(files.file_flags(slice.file_index) & lt::file_storage::flag_pad_file)) {
                payload += static_cast<std::uint64_t>(slice.size);
            }
        }
        const lt::tcp::endpoint ep = a.endpoint;
        PendingBlock& b = e->pending[static_cast<int>(a.piece_index)][a.block_index];
        b.source = seeder_addresses_.contains(ep.address()) ? Source::seeder
                   : in_site(ep.address())                  ? Source::lan_peer
                                                            : Source::outside_peer;
        b.bytes = payload;
        b.peer = endpoint_string(ep);
    }

    // Bytes count only once their piece passed the hash check, so a corrupt piece that is
    // fetched again is not counted twice.
    void on_piece_finished(const lt::piece_finished_alert& a) {
        const auto* idp = id_of(a.handle);
        if (!idp) return;
        auto* e = find(*idp);
        auto it = e->pending.find(static_cast<int>(a.piece_index));
        if (it == e->pending.end()) return;
        for (const auto& [block, b] : it->second) {
            (b.source == Source::seeder ? e->bytes_from_seeder : e->bytes_from_peers) += b.bytes;
            if (b.source == Source::outside_peer) e->bytes_from_outside_peers += b.bytes;
        }
        e->pending.erase(it);
    }

    void on_hash_failed(const lt::hash_failed_alert& a) {
        const auto* idp = id_of(a.handle);
        if (!idp) return;
        const std::string id = *idp;
        auto* e = find(id);
        std::vector<std::string> from;
        if (auto it = e->pending.find(static_cast<int>(a.piece_index)); it != e->pending.end()) {
            std::set<std::string> peers;
            for (const auto& [block, b] : it->second) peers.insert(b.peer);
            from.assign(peers.begin(), peers.end());
            e->pending.erase(it);
        }
        spdlog::warn("swarm {}: piece {} failed its hash check", id,
                     static_cast<int>(a.piece_index));
        if (callbacks_.on_hash_fail) callbacks_.on_hash_fail(id, from);
    }

    void on_resume_data(const lt::save_resume_data_alert& a) {
        const auto* idp = id_of(a.handle);
        if (!idp) return;
        const std::string id = *idp;
        resume_answered(*find(id));
        const std::vector<char> buf = lt::write_resume_data_buf(a.params);
        const fs::path path = settings_.resume_dir / (id + ".resume");
        if (auto ok = write_file_atomic(path, std::string_view(buf.data(), buf.size())); !ok) {
            spdlog::warn("swarm {}: cannot write resume data: {}", id, ok.error().message);
        }
    }

    void on_resume_failed(const lt::save_resume_data_failed_alert& a) {
        const auto* idp = id_of(a.handle);
        if (!idp) return;
        resume_answered(*find(*idp));
        if (a.error == lt::errors::resume_data_not_modified) return;
        spdlog::warn("swarm {}: resume data not saved: {}", *idp, a.error.message());
    }

    void report_error(const lt::torrent_handle& h, const std::string& message) {
        const auto* idp = id_of(h);
        if (!idp) return;
        const std::string id = *idp;
        spdlog::warn("swarm {}: {}", id, message);
        if (callbacks_.on_error) callbacks_.on_error(id, message);
    }

    void drain_alerts() {
        // pop_alerts frees the previous batch: never pop while a callback runs inside a batch.
        if (!session_ || draining_) return;
        draining_ = true;
        struct Reset {
            bool& flag;
            ~Reset() { flag = false; }
        } reset{draining_};
        std::vector<lt::alert*> alerts;
        session_->pop_alerts(&alerts);
        for (const lt::alert* alert : alerts) handle_alert(alert);
    }

    void handle_alert(const lt::alert* alert) {
        if (spdlog::should_log(spdlog::level::trace)) {
            spdlog::trace("swarm {}: {}", settings_.listen, without_userinfo(alert->message()));
        }
        if (auto* a = lt::alert_cast<lt::block_finished_alert>(alert)) {
            on_block(*a);
        } else if (auto* a = lt::alert_cast<lt::piece_finished_alert>(alert)) {
            on_piece_finished(*a);
        } else if (auto* a = lt::alert_cast<lt::hash_failed_alert>(alert)) {
            on_hash_failed(*a);
        } else if (auto* a = lt::alert_cast<lt::torrent_finished_alert>(alert)) {
            if (const auto* id = id_of(a->handle)) notify_finished(std::string(*id));
        } else if (auto* a = lt::alert_cast<lt::state_changed_alert>(alert)) {
            if (a->state == lt::torrent_status::finished ||
                a->state == lt::torrent_status::seeding) {
                if (const auto* id = id_of(a->handle)) check_finished(std::string(*id));
            }
        } else if (auto* a = lt::alert_cast<lt::torrent_checked_alert>(alert)) {
            if (const auto* id = id_of(a->handle)) on_checked(std::string(*id));
        } else if (auto* a = lt::alert_cast<lt::save_resume_data_alert>(alert)) {
            on_resume_data(*a);
        } else if (auto* a = lt::alert_cast<lt::save_resume_data_failed_alert>(alert)) {
            on_resume_failed(*a);
        } else if (auto* a = lt::alert_cast<lt::torrent_error_alert>(alert)) {
            report_error(a->handle, a->message());
        } else if (auto* a = lt::alert_cast<lt::file_error_alert>(alert)) {
            report_error(a->handle, a->message());
        } else if (auto* a = lt::alert_cast<lt::torrent_need_cert_alert>(alert)) {
            // Posted for every SSL torrent when it starts, even after set_ssl_certificate.
            if (!id_of(a->handle)) return;
            if (settings_.ssl_certificate.empty()) {
                spdlog::debug("swarm: {} (no certificate: not enrolled)", a->message());
            } else {
                set_certificate(a->handle);
            }
        } else if (auto* a = lt::alert_cast<lt::listen_failed_alert>(alert)) {
            spdlog::warn("swarm: {}", a->message());
        } else if (auto* a = lt::alert_cast<lt::peer_disconnected_alert>(alert)) {
            spdlog::debug("swarm: {}", a->message());
        } else if (auto* a = lt::alert_cast<lt::peer_ban_alert>(alert)) {
            spdlog::info("swarm: {}", a->message());
        } else if (auto* a = lt::alert_cast<lt::alerts_dropped_alert>(alert)) {
            spdlog::warn("swarm: {} (byte attribution may undercount)", a->message());
        }
    }

    boost::asio::io_context& io_;
    Settings settings_;
    Callbacks callbacks_;
    std::set<boost::asio::ip::address> seeder_addresses_;
    std::vector<core::Cidr> site_ranges_;
    std::shared_ptr<Pump> pump_ = std::make_shared<Pump>();
    std::map<std::string, Entry> entries_;
    std::unordered_map<lt::torrent_handle, std::string> ids_;
    int outstanding_resume_ = 0;
    bool draining_ = false;
    std::string dh_params_;                 // PEM, for set_ssl_certificate_buffer
    std::unique_ptr<lt::session> session_;  // last member: destroyed first
};

}  // namespace

Result<TorrentSummary> create_torrent(const fs::path& payload, const std::string& ssl_root_cert) {
    std::error_code fec;
    fs::path root = fs::absolute(payload, fec);
    if (fec) return fail(Errc::io, "payload " + payload.string() + ": " + fec.message());
    root = root.lexically_normal();
    if (!root.has_filename()) root = root.parent_path();  // "dir/" -> "dir"
    if (auto ok = check_payload_tree(root); !ok) return std::unexpected(ok.error());

    std::vector<char> encoded;
    try {
        lt::file_storage files;
        lt::add_files(files, root.string());
        if (files.num_files() == 0) return fail(Errc::invalid_argument, "payload has no files");
        lt::create_torrent ct(files, 0, lt::create_torrent::v2_only);
        // Same payload, same bytes: no wall-clock date in the torrent.
        ct.set_creation_date(0);
        ct.set_creator("patchswarm");
        if (!ssl_root_cert.empty()) ct.set_root_cert(ssl_root_cert);
        lt::error_code ec;
        lt::set_piece_hashes(ct, root.parent_path().string(), ec);
        if (ec) return fail(Errc::io, "hashing " + root.string() + ": " + ec.message());
        lt::bencode(std::back_inserter(encoded), ct.generate());
    } catch (const lt::system_error& e) {
        return fail(Errc::io, "creating torrent of " + root.string() + ": " + e.code().message());
    } catch (const std::exception& e) {
        return fail(Errc::io, "creating torrent of " + root.string() + ": " + e.what());
    }
    // Run the result through the same checks as an untrusted torrent: what we publish is
    // exactly what endpoints will accept.
    return inspect_torrent(std::vector<std::uint8_t>(encoded.begin(), encoded.end()));
}

Result<TorrentSummary> inspect_torrent(const std::vector<std::uint8_t>& bytes) {
    auto ti = parse_torrent(bytes);
    if (!ti) return std::unexpected(ti.error());
    return summarize(**ti, bytes);
}

Result<std::unique_ptr<Session>> Session::create(boost::asio::io_context& io, Settings settings,
                                                 Callbacks callbacks) {
    auto session = std::make_unique<SessionImpl>(io, std::move(settings), std::move(callbacks));
    if (auto ok = session->start(); !ok) return std::unexpected(ok.error());
    return std::unique_ptr<Session>(std::move(session));
}

}  // namespace patchswarm::io::swarm
