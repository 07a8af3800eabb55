// The lt::session wrapper (see session.hpp): settings, peer classes, torrents, resume data and
// the SSL identity. Alerts reach it through detail::AlertPump; the torrent events are
// detail::TorrentEvents' (alerts.cpp), the rest (resume data, certificates, logs) are handled here.
#include "io/swarm/session.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <libtorrent/add_torrent_params.hpp>
#include <libtorrent/alert_types.hpp>
#include <libtorrent/error_code.hpp>
#include <libtorrent/ip_filter.hpp>
#include <libtorrent/posix_disk_io.hpp>
#include <libtorrent/read_resume_data.hpp>
#include <libtorrent/session.hpp>
#include <libtorrent/session_params.hpp>
#include <libtorrent/settings_pack.hpp>
#include <libtorrent/torrent_handle.hpp>
#include <libtorrent/torrent_info.hpp>
#include <libtorrent/write_resume_data.hpp>
#include <system_error>
#include <utility>

#include "base/version.hpp"
#include "core/sites.hpp"
#include "io/fs.hpp"
#include "io/swarm/detail.hpp"
#include "io/x509.hpp"

namespace patchswarm::io::swarm {

namespace {

namespace fs = std::filesystem;

constexpr std::size_t kMaxResumeBytes = 128 * 1024 * 1024;

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
    pack.set_int(lt::settings_pack::max_piece_count, detail::kMaxPieces);
    pack.set_int(lt::settings_pack::metadata_token_limit, detail::kMaxDecodeTokens);
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

class SessionImpl final : public Session {
  public:
    SessionImpl(boost::asio::io_context& io, Settings settings, Callbacks callbacks)
        : settings_(std::move(settings)),
          callbacks_(std::move(callbacks)),
          pump_(io, settings_.listen, [this](const lt::alert& a) { on_alert(a); }),
          events_(torrents_, origins_, callbacks_,
                  [this](detail::Torrent& t) { request_resume(t, {}); }) {}

    ~SessionImpl() override {
        pump_.stop();
        // Tracker "stopped" announces are bounded by stop_tracker_timeout.
        session_.reset();
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
            origins_.seeders.insert(address);
        }
        for (const auto& text : settings_.site_ranges) {
            auto cidr = core::parse_cidr(text);
            if (!cidr) return fail(Errc::invalid_argument, "site range: " + cidr.error().message);
            origins_.site.push_back(*cidr);
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
        pack.set_str(lt::settings_pack::user_agent, std::string(kUserAgent));
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

        pump_.start(*session_);
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

    Result<void> add(AddParams p) override {
        if (!safe_id(p.id)) return fail(Errc::invalid_argument, "unusable release id: " + p.id);
        if (torrents_.find(p.id)) return fail(Errc::already_exists, "already added: " + p.id);
        auto parsed = detail::parse_torrent(p.torrent);
        if (!parsed) return std::unexpected(parsed.error());
        if (auto summary = detail::summarize(**parsed, p.torrent); !summary) {
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
        detail::Torrent torrent;
        torrent.handle = h;
        torrent.ti = ti;
        torrent.seed = p.seed;
        torrents_.insert(p.id, std::move(torrent));
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
        pump_.post([this, id = p.id] { events_.check_finished(id); });
        return {};
    }

    void remove(const std::string& id) override {
        auto* t = torrents_.find(id);
        if (!t) return;
        outstanding_resume_ -= t->resume_pending;
        session_->remove_torrent(t->handle);
        torrents_.erase(id);
    }

    void force_recheck(const std::string& id) override {
        auto* e = torrents_.find(id);
        if (!e) return;
        // A recheck that ends complete is a new "finished" worth reporting.
        e->finished_notified = false;
        e->handle.force_recheck();
    }

    void add_web_seed(const std::string& id, const std::string& url) override {
        if (auto* e = torrents_.find(id)) {
            e->handle.remove_url_seed(url);
            e->handle.add_url_seed(url);
        }
    }

    void remove_web_seed(const std::string& id, const std::string& url) override {
        if (auto* e = torrents_.find(id)) e->handle.remove_url_seed(url);
    }

    void connect_peer(const std::string& id, const std::string& endpoint) override {
        auto* e = torrents_.find(id);
        if (!e) return;
        if (auto ep = parse_endpoint(endpoint)) {
            e->handle.connect_peer(*ep);
        } else {
            spdlog::warn("swarm {}: ignoring peer that is not ip:port: {}", id, endpoint);
        }
    }

    std::optional<Status> status(const std::string& id) const override {
        const auto* t = torrents_.find(id);
        if (!t) return std::nullopt;
        return detail::to_status(id, *t, t->handle.status());
    }

    void request_progress() override {
        // The same fields as status(), which asks for everything: partial pieces count.
        session_->post_torrent_updates(lt::torrent_handle::query_accurate_download_counters);
    }

    std::vector<Status> status_all() const override {
        std::vector<Status> out;
        out.reserve(torrents_.all().size());
        for (const auto& [id, t] : torrents_.all()) {
            out.push_back(detail::to_status(id, t, t.handle.status()));
        }
        return out;
    }

    void save_resume_data() override {
        for (auto& [id, t] : torrents_.all()) {
            request_resume(t, lt::torrent_handle::only_if_modified);
        }
    }

    void save_resume_data_and_wait(std::chrono::milliseconds timeout) override {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (auto& [id, t] : torrents_.all()) {
            request_resume(t, lt::torrent_handle::only_if_modified);
        }
        // Called from a callback: the batch being handled cannot be popped under it, so the
        // answers are written later by the normal pump.
        if (pump_.draining()) return;
        while (outstanding_resume_ > 0) {
            const auto now = std::chrono::steady_clock::now();
            if (now >= deadline) {
                spdlog::warn("swarm: gave up waiting for {} resume data answers",
                             outstanding_resume_);
                return;
            }
            const auto left = std::chrono::duration_cast<lt::time_duration>(deadline - now);
            session_->wait_for_alert(left);
            pump_.drain();
        }
    }

    std::uint16_t listen_port() const override { return session_->listen_port(); }
    std::uint16_t ssl_listen_port() const override {
        return settings_.ssl_listen.empty() ? 0 : session_->ssl_listen_port();
    }

    void set_ssl_identity(const std::string& cert_pem, const std::string& key_pem) override {
        settings_.ssl_certificate = cert_pem;
        settings_.ssl_private_key = key_pem;
        for (auto& [id, entry] : torrents_.all()) {
            if (!entry.ti->ssl_cert().empty()) set_certificate(entry.handle);
        }
    }

    void set_certificate(lt::torrent_handle h) {
        h.set_ssl_certificate_buffer(settings_.ssl_certificate, settings_.ssl_private_key,
                                     dh_params_);
    }

  private:
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
            detail::torrent_limits());
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

    void request_resume(detail::Torrent& e, lt::resume_data_flags_t flags) {
        e.handle.save_resume_data(flags | lt::torrent_handle::flush_disk_cache);
        ++e.resume_pending;
        ++outstanding_resume_;
    }

    void resume_answered(detail::Torrent& e) {
        if (e.resume_pending > 0) {
            --e.resume_pending;
            --outstanding_resume_;
        }
    }

    void on_resume_data(const lt::save_resume_data_alert& a) {
        const auto* idp = torrents_.id_of(a.handle);
        if (!idp) return;
        const std::string id = *idp;
        resume_answered(*torrents_.find(id));
        const std::vector<char> buf = lt::write_resume_data_buf(a.params);
        const fs::path path = settings_.resume_dir / (id + ".resume");
        if (auto ok = write_file_atomic(path, std::string_view(buf.data(), buf.size())); !ok) {
            spdlog::warn("swarm {}: cannot write resume data: {}", id, ok.error().message);
        }
    }

    void on_resume_failed(const lt::save_resume_data_failed_alert& a) {
        const auto* idp = torrents_.id_of(a.handle);
        if (!idp) return;
        resume_answered(*torrents_.find(*idp));
        if (a.error == lt::errors::resume_data_not_modified) return;
        spdlog::warn("swarm {}: resume data not saved: {}", *idp, a.error.message());
    }

    // The alerts that are the session's own business; TorrentEvents takes the rest first.
    void on_alert(const lt::alert& alert) {
        if (events_.handle(alert)) return;
        const lt::alert* p = &alert;
        if (auto* a = lt::alert_cast<lt::save_resume_data_alert>(p)) {
            on_resume_data(*a);
        } else if (auto* a = lt::alert_cast<lt::save_resume_data_failed_alert>(p)) {
            on_resume_failed(*a);
        } else if (auto* a = lt::alert_cast<lt::torrent_need_cert_alert>(p)) {
            // Posted for every SSL torrent when it starts, even after set_ssl_certificate.
            if (!torrents_.id_of(a->handle)) return;
            if (settings_.ssl_certificate.empty()) {
                spdlog::debug("swarm: {} (no certificate: not enrolled)", a->message());
            } else {
                set_certificate(a->handle);
            }
        } else if (auto* a = lt::alert_cast<lt::listen_failed_alert>(p)) {
            spdlog::warn("swarm: {}", a->message());
        } else if (auto* a = lt::alert_cast<lt::peer_disconnected_alert>(p)) {
            spdlog::debug("swarm: {}", a->message());
        } else if (auto* a = lt::alert_cast<lt::peer_ban_alert>(p)) {
            spdlog::info("swarm: {}", a->message());
        } else if (auto* a = lt::alert_cast<lt::alerts_dropped_alert>(p)) {
            spdlog::warn("swarm: {} (byte attribution may undercount)", a->message());
        }
    }

    Settings settings_;
    Callbacks callbacks_;
    detail::PeerOrigins origins_;
    detail::Torrents torrents_;
    int outstanding_resume_ = 0;
    std::string dh_params_;  // PEM, for set_ssl_certificate_buffer
    detail::AlertPump pump_;
    detail::TorrentEvents events_;
    std::unique_ptr<lt::session> session_;  // last member: destroyed first
};

}  // namespace

Result<std::unique_ptr<Session>> Session::create(boost::asio::io_context& io, Settings settings,
                                                 Callbacks callbacks) {
    auto session = std::make_unique<SessionImpl>(io, std::move(settings), std::move(callbacks));
    if (auto ok = session->start(); !ok) return std::unexpected(ok.error());
    return std::unique_ptr<Session>(std::move(session));
}

}  // namespace patchswarm::io::swarm
