#include "seeder/serve_setup.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <stdexcept>

#include "io/fd_limit.hpp"
#include "io/key_files.hpp"
#include "io/swarm/session.hpp"
#include "seeder/enrolment.hpp"

namespace patchswarm::seeder {

void check_serve_options(const ServeOptions& options) {
    if (options.feed_expiry < kMinFeedExpiry || options.feed_expiry > kMaxFeedExpiry) {
        throw std::invalid_argument("--feed-expiry must be 60..604800 seconds");
    }
    if (options.gateways > kMaxGateways) {
        throw std::invalid_argument("--gateways must be 0.." + std::to_string(kMaxGateways));
    }
    if (options.site_stall.count() < 1) throw std::invalid_argument("--site-stall must be >= 1");
    if (options.stale_after.count() < 1) throw std::invalid_argument("--stale-after must be >= 1");
    if (options.cert_lifetime < kMinCertLifetime || options.cert_lifetime > kMaxCertLifetime) {
        throw std::invalid_argument("--cert-lifetime must be 20..31536000 seconds");
    }
    if (options.site_upload_limit < 0) {
        throw std::invalid_argument("--site-upload-limit must not be negative");
    }
}

void warn_if_root_expires_soon(const core::RootDocument& root, std::int64_t now) {
    const std::int64_t left = root.expires - now;
    if (left < kRootExpiryWarning) {
        spdlog::warn(
            "root version {} expires in {} day(s): rotate it (root rotate) before endpoints "
            "refuse it",
            root.version, std::max<std::int64_t>(left, 0) / 86'400);
    }
}

Result<crypto::KeyPair> feed_key_for(const RepoPaths& paths, const core::RootDocument& root) {
    auto key = io::load_secret_key(paths.feed_secret_key());
    if (!key) return fail(key.error().code, "feed key: " + key.error().message);
    const auto& ids = root.feed.keyids;
    if (std::find(ids.begin(), ids.end(), crypto::key_id(key->public_key)) == ids.end()) {
        return fail(Errc::bad_signature, paths.feed_secret_key().string() +
                                             " is not a feed key of root version " +
                                             std::to_string(root.version));
    }
    return *key;
}

RepoForServe open_repo(const RepoPaths& paths, std::int64_t now) {
    auto info = load_repo_info(paths);
    if (!info) {
        throw std::runtime_error(info.error().code == Errc::not_found
                                     ? paths.root().string() +
                                           " is not an initialised repository: publish a release "
                                           "into it first"
                                     : info.error().message);
    }
    auto root = load_current_root(paths);
    if (!root) throw std::runtime_error(root.error().message);
    auto key = feed_key_for(paths, root->doc);
    if (!key) throw std::runtime_error(key.error().message);
    warn_if_root_expires_soon(root->doc, now);
    return {std::move(*info), *key, root->version};
}

Result<io::x509::KeyAndCert> seeder_certificate(const io::x509::KeyAndCert& ca) {
    auto key = io::x509::generate_key();
    if (!key) return fail(key.error().code, "seeder TLS key: " + key.error().message);
    auto pub = io::x509::public_key_of(*key);
    if (!pub) return fail(pub.error().code, "seeder TLS key: " + pub.error().message);
    auto cert = io::x509::issue(ca, *pub, "patchswarm-seeder", kSeederCertLifetime);
    if (!cert) return fail(cert.error().code, "seeder certificate: " + cert.error().message);
    return io::x509::KeyAndCert{std::move(*key), std::move(*cert)};
}

tracker::PeerAddress seeder_bt_address(const ServeOptions& options, std::uint16_t bound_port) {
    const bool explicit_public = !options.bt_public.empty();
    const auto parsed =
        tracker::parse_host_port(explicit_public ? options.bt_public : options.bt, true);
    if (!parsed) {
        throw std::runtime_error(explicit_public ? "--bt-public is not ip:port"
                                                 : "--bt is not ip:port");
    }
    tracker::PeerAddress address = *parsed;
    if (!explicit_public) address.port = bound_port;
    if (address.port == 0 || tracker::is_unspecified(address)) {
        throw std::runtime_error(
            "--bt listens on all addresses; give --bt-public with the address peers should use");
    }
    return address;
}

ConnectionCap connection_cap(std::size_t requested, std::uint64_t fd_soft_limit) {
    const std::size_t budget = io::connections_for_fd_limit(fd_soft_limit);
    if (requested == 0) return {std::min(budget, kDefaultMaxConnections), {}};
    if (requested <= budget) return {requested, {}};
    return {budget, "--max-connections " + std::to_string(requested) +
                        " needs an open-file limit of at least " +
                        std::to_string(requested + io::kFdReserve) + " but it is " +
                        std::to_string(fd_soft_limit) + ": holding at most " +
                        std::to_string(budget) +
                        " connections (raise LimitNOFILE in the systemd unit, or ulimit -n)"};
}

std::string ssl_listen_for(const ServeOptions& options) {
    if (!options.bt_ssl.empty()) return options.bt_ssl;
    const auto parsed = tracker::parse_host_port(options.bt, true);
    if (!parsed) throw std::runtime_error("--bt is not ip:port");
    const std::string host =
        parsed->v6 ? "[" + tracker::ip_to_string(*parsed) + "]" : tracker::ip_to_string(*parsed);
    return host + ":" +
           std::to_string(parsed->port == 0 || parsed->port == 65535 ? 0 : parsed->port + 1);
}

}  // namespace patchswarm::seeder
