#include "daemon/release_runner.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio.hpp>

#include "core/trust.hpp"
#include "daemon/payload_stager.hpp"
#include "daemon/relay.hpp"
#include "daemon/seeder_client.hpp"
#include "io/crash_point.hpp"
#include "io/env.hpp"
#include "io/http/client.hpp"
#include "io/swarm/session.hpp"
#include "io/swarm/torrent_file.hpp"
#include "io/worker_pool.hpp"

namespace patchswarm::daemon {
namespace fs = std::filesystem;
using io::WorkerPool;

namespace {

constexpr std::size_t kMaxTorrentBytes = 64 << 20;
constexpr std::size_t kMaxOutputStored = 8 * 1024;
// Hashing/installing one release at a time each, a few releases at once, and the reboot command.
constexpr std::size_t kWorkerThreads = 4;
// The reboot command may take the machine down before it returns; it must not hold a worker (or
// shutdown) for ever.
constexpr auto kRebootTimeout = std::chrono::seconds(300);

std::string tail(const std::string& s, std::size_t n) {
    return s.size() <= n ? s : s.substr(s.size() - n);
}

std::string host_of(const std::string& host_port) {
    const auto colon = host_port.rfind(':');
    return colon == std::string::npos ? host_port : host_port.substr(0, colon);
}

// Host part of "http://host:port/..." for counting bytes from the seeder.
std::string url_host(const std::string& url) {
    std::string rest = url;
    if (auto p = rest.find("://"); p != std::string::npos) rest = rest.substr(p + 3);
    rest = rest.substr(0, rest.find('/'));
    return host_of(rest);
}

// bt_ssl_listen, or bt_listen's host with the next port.
std::string ssl_listen_of(const AgentConfig& cfg) {
    if (!cfg.bt_ssl_listen.empty()) return cfg.bt_ssl_listen;
    const auto colon = cfg.bt_listen.rfind(':');
    if (colon == std::string::npos) return {};
    int port = 0;
    try {
        port = std::stoi(cfg.bt_listen.substr(colon + 1));
    } catch (const std::exception&) {
        return {};
    }
    return cfg.bt_listen.substr(0, colon) + ":" +
           std::to_string(port <= 0 || port >= 65535 ? 0 : port + 1);
}

}  // namespace

ReleaseRunner::ReleaseRunner(boost::asio::io_context& io, io::Env& env, EndpointStore& store,
                             SeederClient& seeders, const AgentConfig& cfg, std::string device_id,
                             const std::optional<TlsIdentity>* tls, Hooks hooks)
    : io_(io),
      env_(env),
      store_(store),
      seeders_(seeders),
      cfg_(cfg),
      device_id_(std::move(device_id)),
      tls_(tls),
      hooks_(std::move(hooks)),
      pool_(std::make_unique<WorkerPool>(io, kWorkerThreads)) {
    open_session();
}

ReleaseRunner::~ReleaseRunner() = default;

void ReleaseRunner::open_session() {
    io::swarm::Settings s;
    s.listen = cfg_.bt_listen;
    s.resume_dir = cfg_.state_dir / "resume";
    s.enable_lsd = cfg_.lsd;
    s.download_rate_limit = cfg_.download_limit;
    s.upload_rate_limit = cfg_.upload_limit;
    // Only HQ (the first --seeder) counts as "the seeder"; relays are peers like any other.
    s.seeder_addresses.push_back(url_host(seeders_.hq()));
    s.site_ranges = cfg_.site_ranges;
    if (*tls_) {
        s.ssl_listen = ssl_listen_of(cfg_);
        s.ssl_certificate = (*tls_)->cert_pem;
        s.ssl_private_key = (*tls_)->key_pem;
    }
    if (cfg_.wan_limit > 0) {
        // Everything outside the site is WAN, capped each way; the site's own ranges are
        // uncapped and always unchoked, as libtorrent's "local" class would have them.
        if (cfg_.site_ranges.empty()) {
            spdlog::warn("--wan-limit without --site-ranges: every peer is capped");
        }
        s.peer_classes.push_back(
            {"wan", {"0.0.0.0/0", "::/0"}, cfg_.wan_limit, cfg_.wan_limit, false});
        if (!cfg_.site_ranges.empty()) {
            s.peer_classes.push_back({"lan", cfg_.site_ranges, 0, 0, true});
        }
    }
    io::swarm::Callbacks cb;
    cb.on_finished = [this](const std::string& id) {
        refresh_progress(id);
        hooks_.on_event(id, core::ev::DownloadComplete{});
    };
    cb.on_progress = [this](const std::vector<io::swarm::Status>& changed) {
        for (const auto& st : changed) {
            if (auto* r = find(st.id); r && r->in_session) take_status(*r, st);
        }
    };
    cb.on_piece = [this](const std::string& id) {
        if (hooks_.on_piece) hooks_.on_piece(id);
    };
    cb.on_error = [](const std::string& id, const std::string& msg) {
        spdlog::warn("{}: swarm error: {}", id, msg);
    };
    cb.on_hash_fail = [](const std::string& id, const std::vector<std::string>& from) {
        std::string peers;
        for (const auto& p : from) peers += (peers.empty() ? "" : ",") + p;
        spdlog::warn("{}: a piece failed its hash check (from {}); refetching", id,
                     peers.empty() ? "unknown peers" : peers);
    };
    auto created = io::swarm::Session::create(io_, std::move(s), std::move(cb));
    if (!created) throw std::runtime_error("swarm: " + created.error().message);
    session_ = std::move(*created);
}

fs::path ReleaseRunner::release_dir(const std::string& id) const {
    return cfg_.state_dir / "releases" / id;
}

RunnerRelease* ReleaseRunner::find(const std::string& id) {
    auto it = releases_.find(id);
    return it == releases_.end() ? nullptr : &it->second;
}

void ReleaseRunner::install(RunnerRelease release) {
    const std::string id = release.stored.record.id;
    if (relay_) {
        relay_->set_manifest(id, release.stored.manifest_envelope);
        if (!release.stored.torrent.empty()) relay_->set_torrent(id, release.stored.torrent);
    }
    releases_.insert_or_assign(id, std::move(release));
}

void ReleaseRunner::rejoin(const std::string& id) {
    if (auto* r = find(id)) add_to_session(*r);
}

void ReleaseRunner::execute(const std::string& id, const core::Command& c) {
    if (std::holds_alternative<core::cmd::SaveResumeData>(c)) return session_->save_resume_data();
    if (std::holds_alternative<core::cmd::SendReport>(c)) return hooks_.send_report();
    if (std::holds_alternative<core::cmd::RemoveReleaseFiles>(c)) return remove_files(id);
    RunnerRelease* r = find(id);
    if (!r) return;
    std::visit(
        [&](const auto& cmd) {
            using T = std::decay_t<decltype(cmd)>;
            if constexpr (std::is_same_v<T, core::cmd::StartDownload>) {
                start_download(*r, false);
            } else if constexpr (std::is_same_v<T, core::cmd::Redownload>) {
                start_download(*r, true);
            } else if constexpr (std::is_same_v<T, core::cmd::VerifyPayload>) {
                verify_payload(*r);
            } else if constexpr (std::is_same_v<T, core::cmd::RunInstall>) {
                run_install(*r, InstallStep::start);
            } else if constexpr (std::is_same_v<T, core::cmd::ProbeInstall>) {
                run_install(*r, InstallStep::probe);
            } else if constexpr (std::is_same_v<T, core::cmd::AwaitInstall>) {
                run_install(*r, InstallStep::await);
            } else if constexpr (std::is_same_v<T, core::cmd::RunVerify>) {
                if (r->manifest.verify) run_verify(*r, *r->manifest.verify);
            } else if constexpr (std::is_same_v<T, core::cmd::RunReboot>) {
                run_reboot(id);
            } else if constexpr (std::is_same_v<T, core::cmd::LeaveSwarm>) {
                if (r->in_session) session_->remove(id);
                r->in_session = false;
                hooks_.on_left_swarm(id);
            } else if constexpr (std::is_same_v<T, core::cmd::AddWebSeed>) {
                add_web_seed(*r);
            }
        },
        c);
}

// A replaced release: the new row is already saved, so nothing refers to these files any more.
void ReleaseRunner::remove_files(const std::string& id) {
    session_->remove(id);
    std::error_code ec;
    fs::remove_all(release_dir(id), ec);
    fs::remove(cfg_.state_dir / "resume" / (id + ".resume"), ec);
    if (auto* r = find(id)) r->in_session = false;
}

void ReleaseRunner::start_download(RunnerRelease& r, bool recheck) {
    const std::string id = r.stored.record.id;
    if (r.stored.torrent.empty()) return fetch_torrent(id);
    if (!r.in_session) {
        if (!add_to_session(r)) return;
    } else if (recheck) {
        session_->force_recheck(id);
    }
    hooks_.on_event(id, core::ev::DownloadStarted{});
}

bool ReleaseRunner::add_to_session(RunnerRelease& r) {
    const std::string id = r.stored.record.id;
    io::swarm::AddParams p;
    p.id = id;
    p.torrent = r.stored.torrent;
    p.save_path = release_dir(id) / "download";
    for (const auto& s : seeders_.all()) p.trackers.push_back(s + "/announce");
    std::error_code ec;
    fs::create_directories(p.save_path, ec);
    auto ok = session_->add(std::move(p));
    if (!ok && ok.error().code != Errc::already_exists) {
        spdlog::error("{}: cannot join the swarm: {}", id, ok.error().message);
        return false;
    }
    r.in_session = true;
    hooks_.on_joined_swarm(id);
    return true;
}

void ReleaseRunner::fetch_torrent(const std::string& id) {
    RunnerRelease& r = releases_.at(id);
    if (r.fetching_torrent) return;
    r.fetching_torrent = true;
    const std::string sha = r.stored.manifest_sha256;
    io::http::request(
        io_, seeders_.get("/v1/releases/" + id + "/torrent", kMaxTorrentBytes),
        [this, id, sha](Result<io::http::ClientResponse> res) {
            auto* r = find(id);
            // Replaced meanwhile: this torrent belongs to the old manifest.
            if (!r || r->stored.manifest_sha256 != sha) return;
            r->fetching_torrent = false;
            if (!res || res->status != 200) {
                const std::string why =
                    res ? "HTTP " + std::to_string(res->status) : res.error().message;
                return hooks_.on_event(
                    id, core::ev::PayloadVerified{false, "torrent fetch failed: " + why});
            }
            on_torrent(*r, std::vector<std::uint8_t>(res->body.begin(), res->body.end()));
        });
}

void ReleaseRunner::on_torrent(RunnerRelease& r, std::vector<std::uint8_t> bytes) {
    const std::string id = r.stored.record.id;
    auto summary = io::swarm::inspect_torrent(bytes);
    if (!summary)
        return hooks_.on_event(id, core::ev::Rejected{"torrent: " + summary.error().message});
    core::TorrentFacts facts{summary->infohash_v2, summary->name, {}};
    for (const auto& f : summary->files) facts.files.emplace_back(f.path, f.size);
    if (auto ok = core::check_torrent_matches(r.manifest, facts); !ok) {
        return hooks_.on_event(id, core::ev::Rejected{"torrent: " + ok.error().message});
    }
    if (auto ok = store_.save_torrent(id, bytes); !ok) {
        spdlog::error("{}: cannot persist torrent: {}", id, ok.error().message);
        return;
    }
    r.stored.torrent = std::move(bytes);
    if (relay_) relay_->set_torrent(id, r.stored.torrent);
    hooks_.on_torrent_stored(id);
    start_download(r, false);
}

// Hashing and installs block; they run on the pool and come back as events by id. A job
// captures only values (and the Env, which outlives the pool); its on_done runs on the
// io_context. The pool refuses jobs only once shutdown started, when nothing is acted on anyway.
void ReleaseRunner::verify_payload(RunnerRelease& r) {
    const std::string id = r.stored.record.id;
    spdlog::info("{}: download complete; verifying every byte against the manifest", id);
    refresh_one(r);
    (void)pool_->post(
        [m = r.manifest, dl = release_dir(id) / "download", inst = release_dir(id) / "install",
         &env = env_] {
            auto ok = stage_payload(env, m, dl, inst);
            return core::ev::PayloadVerified{ok.has_value(), ok ? "" : ok.error().message};
        },
        [this, id](core::ev::PayloadVerified ev) { hooks_.on_event(id, ev); });
    session_->save_resume_data();
}

// One install is one key: the release, its manifest (a replaced release with the same id is
// another install) and the attempt. A restarted agent computes the same key from the record it
// saved before the install started, so it finds the supervisor that outlived it.
std::string ReleaseRunner::install_key(const RunnerRelease& r) {
    return r.stored.record.id + "." + r.stored.manifest_sha256.substr(0, 16) + "." +
           std::to_string(r.stored.record.attempts);
}

io::ProcessSpec ReleaseRunner::command_spec(const RunnerRelease& r,
                                            const core::CommandLine& command) const {
    const std::string& id = r.stored.record.id;
    io::ProcessSpec spec;
    spec.argv = command.argv;
    spec.cwd = release_dir(id) / "install";
    spec.timeout = std::chrono::seconds(command.timeout_s);
    spec.extra_env = {{"PATCHSWARM_RELEASE_ID", id},
                      {"PATCHSWARM_STATE_DIR", cfg_.state_dir.string()}};
    return spec;
}

// Installs run under a supervisor that outlives the agent (io/supervise.hpp): the worker only
// starts it, waits for it, and reads its record. A shutdown stops the wait, not the install; the
// record on disk still says `installing`, and the next start probes the supervisor again
// (core/install_recovery.hpp decides: wait, adopt the result, start, re-run or hold).
void ReleaseRunner::run_install(RunnerRelease& r, InstallStep step) {
    const std::string id = r.stored.record.id;
    io::SupervisedSpec s;
    s.dir = cfg_.state_dir / "installs";
    s.key = install_key(r);
    if (step == InstallStep::start) {
        s.process = command_spec(r, r.manifest.install);
        spdlog::info("{}: running install ({}) under a supervisor, key {}", id,
                     r.manifest.install.argv[0], s.key);
    } else {
        spdlog::info("{}: {} the install supervised as {}", id,
                     step == InstallStep::probe ? "looking for" : "waiting for", s.key);
    }
    (void)pool_->post(
        [s = std::move(s), step,
         &env = env_](std::stop_token stop) -> std::optional<core::InstallObservation> {
            if (step == InstallStep::start) {
                io::crash_point("install.before_start");
                auto started = env.start_supervised(s);
                if (!started && started.error().code != Errc::already_exists) {
                    // Nothing was started: a failed install with the reason, as before.
                    core::InstallObservation seen;
                    seen.recorded = true;
                    seen.finished = true;
                    seen.exit_code = 127;
                    seen.output_tail = started.error().message;
                    return seen;
                }
                io::crash_point("install.after_start");
            }
            if (step != InstallStep::probe && !env.wait_supervised(s.dir, s.key, stop)) {
                return std::nullopt;  // shutdown: the install goes on without us
            }
            auto seen = env.probe_supervised(s.dir, s.key);
            if (step != InstallStep::probe) io::crash_point("install.after_wait");
            return seen;
        },
        [this, id](std::optional<core::InstallObservation> seen) {
            if (!seen) {
                spdlog::warn(
                    "{}: the agent stops while the install runs on under its "
                    "supervisor; the next start waits for it",
                    id);
                return;
            }
            if (seen->finished) {
                if (auto ok = store_.save_output(id, tail(seen->output_tail, kMaxOutputStored));
                    !ok) {
                    spdlog::warn("{}: cannot store the install output: {}", id, ok.error().message);
                }
                seen->output_tail = tail(seen->output_tail, 1000);
            }
            // Read here, not on the worker: an install that rebooted the machine never
            // returns, so the reading belongs to the boot the install ended in either way.
            hooks_.on_event(id, core::ev::InstallObserved{std::move(*seen), env_.boot_id()});
        });
}

void ReleaseRunner::run_verify(RunnerRelease& r, const core::CommandLine& command) {
    const std::string id = r.stored.record.id;
    io::ProcessSpec spec = command_spec(r, command);
    spdlog::info("{}: running verify ({})", id, command.argv[0]);
    // The pool's stop token goes into the spec: shutdown kills the command's process group.
    (void)pool_->post(
        [spec = std::move(spec), &env = env_](std::stop_token stop) mutable {
            spec.stop = std::move(stop);
            return env.run_process(spec);
        },
        [this, id](Result<io::ProcessResult> res) {
            if (res && res->stopped) {
                // Not an outcome: the record on disk still says the verify runs, and the next
                // start runs it again (core's ev::Resumed; a verify is idempotent).
                spdlog::warn("{}: verify command stopped by the shutdown", id);
                return;
            }
            const std::string out = res ? res->output : res.error().message;
            if (auto ok = store_.save_output(id, tail(out, kMaxOutputStored)); !ok) {
                spdlog::warn("{}: cannot store the command output: {}", id, ok.error().message);
            }
            const bool ok = res && !res->timed_out && res->exit_code == 0;
            hooks_.on_event(id,
                            core::ev::VerifyFinished{
                                ok, ok ? ""
                                       : (res ? "verify exited " + std::to_string(res->exit_code)
                                              : res.error().message) +
                                             ": " + tail(out, 500)});
        });
}

// The reboot command is not the release's work: it may never return (the machine goes down),
// and the state machine learns of the reboot from the boot id, read again when it returns.
void ReleaseRunner::run_reboot(const std::string& id) {
    if (cfg_.reboot_command.empty()) return;
    io::ProcessSpec spec;
    spec.argv = cfg_.reboot_command;
    spec.cwd = cfg_.state_dir;
    spec.timeout = kRebootTimeout;
    spec.extra_env = {{"PATCHSWARM_RELEASE_ID", id},
                      {"PATCHSWARM_STATE_DIR", cfg_.state_dir.string()}};
    spdlog::warn("{}: reboot required and allowed now: running {}", id, spec.argv[0]);
    // Returns whether the shutdown stopped it: then nothing rebooted and nothing is re-read.
    (void)pool_->post(
        [id, spec = std::move(spec), &env = env_](std::stop_token stop) mutable {
            spec.stop = std::move(stop);
            auto res = env.run_process(spec);
            if (!res) {
                spdlog::error("{}: reboot command failed to start: {}", id, res.error().message);
            } else if (res->stopped) {
                spdlog::warn("{}: reboot command stopped by the shutdown", id);
                return true;
            } else if (res->exit_code != 0 || res->timed_out) {
                spdlog::error("{}: reboot command exited {}{}: {}", id, res->exit_code,
                              res->timed_out ? " (timed out)" : "", tail(res->output, 500));
            }
            return false;
        },
        [this](bool stopped) {
            if (!stopped) hooks_.on_reboot_finished();
        });
}

void ReleaseRunner::add_web_seed(RunnerRelease& r) {
    const std::string& id = r.stored.record.id;
    if (!r.in_session) return;
    // The first --seeder is HQ by convention; relays do not serve payload bytes.
    const std::string url = seeders_.hq() + "/v1/payload/" + id + "/";
    spdlog::warn("{}: no progress for {}s; adding web seed {}", id, cfg_.webseed_after_s, url);
    // After a renewal the credentials differ: the old URL would only collect 403s.
    const std::string with_credentials = with_web_credentials(url);
    if (!r.web_seed_url.empty() && r.web_seed_url != with_credentials) {
        session_->remove_web_seed(id, r.web_seed_url);
    }
    session_->add_web_seed(id, with_credentials);
    r.web_seed_url = with_credentials;
}

// An enrolled fleet's web seed wants the device id and web secret as Basic credentials, which
// libtorrent takes from the URL's user-info part.
std::string ReleaseRunner::with_web_credentials(const std::string& url) const {
    if (!*tls_ || (*tls_)->web_secret.empty()) return url;
    const auto scheme_end = url.find("://");
    if (scheme_end == std::string::npos) return url;
    return url.substr(0, scheme_end + 3) + device_id_ + ":" + (*tls_)->web_secret + "@" +
           url.substr(scheme_end + 3);
}

void ReleaseRunner::renewed(const TlsIdentity& tls) {
    session_->set_ssl_identity(tls.cert_pem, tls.key_pem);
}

void ReleaseRunner::refresh_progress(const std::string& id) {
    if (!id.empty()) {
        if (auto* r = find(id)) refresh_one(*r);
        return;
    }
    for (auto& [rid, r] : releases_) refresh_one(r);
}

void ReleaseRunner::request_progress() {
    session_->request_progress();
}

// Blocks on libtorrent's thread: only where the counters must be exact now (a finished download,
// shutdown); the steady flow comes from request_progress.
void ReleaseRunner::refresh_one(RunnerRelease& r) {
    auto st = r.in_session ? session_->status(r.stored.record.id) : std::nullopt;
    if (st) take_status(r, *st);
}

// Byte counters from the swarm into the row (and state.db when they moved).
void ReleaseRunner::take_status(RunnerRelease& r, const io::swarm::Status& status) {
    const std::string& id = r.stored.record.id;
    const std::uint64_t peers = r.base_from_peers + status.bytes_from_peers;
    const std::uint64_t seed = r.base_from_seeder + status.bytes_from_seeder;
    const std::uint64_t lan = r.base_from_lan + status.bytes_from_lan;
    const std::uint64_t wan = r.base_from_wan + status.bytes_from_outside_site;
    auto& s = r.stored;
    if (status.total_done == s.bytes_done && peers == s.bytes_from_peers &&
        seed == s.bytes_from_seeder && lan == s.bytes_from_lan && wan == s.bytes_from_wan) {
        return;
    }
    spdlog::debug("{}: {} of {} bytes; {} from peers, {} from the seeder, {} peers connected", id,
                  status.total_done, r.manifest.total_size(), peers, seed, status.num_peers);
    s.bytes_done = status.total_done;
    s.bytes_from_peers = peers;
    s.bytes_from_seeder = seed;
    s.bytes_from_lan = lan;
    s.bytes_from_wan = wan;
    if (auto ok = store_.save_progress(
            id, {status.total_done, r.manifest.total_size(), peers, seed, lan, wan});
        !ok) {
        spdlog::warn("{}: cannot store progress: {}", id, ok.error().message);
    }
    hooks_.on_progress(id);
}

void ReleaseRunner::shutdown(std::chrono::milliseconds bound) {
    refresh_progress();
    // A running verify or reboot command is stopped (its process group killed); a running
    // install is not: it belongs to its supervisor, and only our wait for it stops. The record
    // on disk says what was running, and the next start resumes from it (the install: waits for
    // the supervisor or adopts its result; a verify runs again). What ended within the bound is
    // acted on now: the agent stops the io_context next.
    if (!pool_->shutdown(bound)) {
        spdlog::warn("a worker job is still running after {} ms; waiting for it to end",
                     bound.count());
    }
    pool_->deliver_ready();
    session_->save_resume_data_and_wait(std::chrono::seconds(5));
}

}  // namespace patchswarm::daemon
