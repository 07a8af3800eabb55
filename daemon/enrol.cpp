#include "daemon/enrol.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/enrol_token.hpp"
#include "core/envelope.hpp"
#include "core/json_strict.hpp"
#include "core/manifest.hpp"
#include "io/env.hpp"
#include "io/fs.hpp"
#include "io/http/client.hpp"
#include "io/key_files.hpp"
#include "io/x509.hpp"

namespace patchswarm::daemon {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kMaxWebSecretBytes = 256;

// The options' Env, or one PosixEnv for the process (the CLI's `enroll` passes none).
io::Env& env_of(const EnrolOptions& o) {
    if (o.env) return *o.env;
    static const std::unique_ptr<io::Env> posix = io::make_posix_env();
    return *posix;
}

Result<std::string> load_or_create_tls_key(io::Env& env, const fs::path& state_dir) {
    const fs::path path = state_dir / "tls.key";
    auto existing = io::read_file(path, io::x509::kMaxPemBytes);
    if (existing) return existing;
    if (existing.error().code != Errc::not_found) return existing;
    auto key = io::x509::generate_key();
    if (!key) return key;
    if (auto ok = env.write_file_atomic(path, *key, fs::perms::owner_read | fs::perms::owner_write);
        !ok) {
        return std::unexpected(ok.error());
    }
    spdlog::info("created TLS key {}", path.string());
    return key;
}

std::string message_of(const std::string& body) {
    const auto doc = nlohmann::json::parse(body, nullptr, false);
    if (doc.is_object() && doc.contains("message") && doc["message"].is_string()) {
        return doc["message"].get<std::string>();
    }
    return body.substr(0, 200);
}

}  // namespace

Result<crypto::KeyPair> load_or_create_device_key(const fs::path& state_dir) {
    std::error_code ec;
    fs::create_directories(state_dir, ec);
    if (ec) return fail(Errc::io, state_dir.string() + ": " + ec.message());
    const fs::path base = state_dir / "device";
    if (!fs::exists(base.string() + ".key")) {
        if (auto ok = io::write_keypair(base, crypto::generate_keypair()); !ok) {
            return fail(ok.error().code, "cannot create device key: " + ok.error().message);
        }
        spdlog::info("created device key {}.key", base.string());
    }
    auto kp = io::load_secret_key(base.string() + ".key");
    if (!kp) return fail(kp.error().code, "device key: " + kp.error().message);
    return kp;
}

std::int64_t renew_at(const TlsIdentity& id) {
    const std::int64_t issued = id.not_before + io::x509::kBackdateSeconds;
    return issued + (id.not_after - issued) / 2;
}

Result<std::optional<TlsIdentity>> load_tls_identity(const fs::path& state_dir) {
    auto cert = io::read_file(state_dir / "tls.crt", io::x509::kMaxPemBytes);
    if (!cert) {
        if (cert.error().code == Errc::not_found) return std::optional<TlsIdentity>{};
        return std::unexpected(cert.error());
    }
    auto key = io::read_file(state_dir / "tls.key", io::x509::kMaxPemBytes);
    if (!key) return fail(key.error().code, "tls.key: " + key.error().message);
    auto ca = io::read_file(state_dir / "fleet-ca.pem", io::x509::kMaxPemBytes);
    if (!ca) return fail(ca.error().code, "fleet-ca.pem: " + ca.error().message);
    if (auto ok = io::x509::check(*cert, *ca, *key, std::nullopt); !ok) {
        return fail(ok.error().code, "tls.crt: " + ok.error().message);
    }
    auto info = io::x509::inspect(*cert);
    if (!info) return fail(info.error().code, "tls.crt: " + info.error().message);
    // Absent for enrolments before web secrets: the next renewal brings one.
    auto secret = io::read_file(state_dir / "web.secret", kMaxWebSecretBytes);
    if (!secret && secret.error().code != Errc::not_found) {
        return fail(secret.error().code, "web.secret: " + secret.error().message);
    }
    return std::optional<TlsIdentity>(TlsIdentity{std::move(*key), std::move(*cert), std::move(*ca),
                                                  secret ? *secret : "", info->not_before,
                                                  info->not_after});
}

std::string make_enrolment(const crypto::KeyPair& device_key, std::string_view tls_public_key,
                           const crypto::KeyPair* token_key, std::string_view hostname,
                           std::int64_t sent_at) {
    nlohmann::json doc = {{"format", 2},
                          {"device_id", core::device_id_for(device_key.public_key)},
                          {"device_key", crypto::to_hex(device_key.public_key)},
                          {"tls_public_key", tls_public_key},
                          {"hostname", hostname},
                          {"sent_at", sent_at}};
    if (token_key) doc["token_key"] = crypto::to_hex(token_key->public_key);
    const std::string payload = doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::vector<crypto::KeyPair> keys = {device_key};
    if (token_key) keys.push_back(*token_key);
    return core::serialize_envelope(
        core::sign_envelope(core::payload_type::enrolment, crypto::as_bytes(payload), keys));
}

Result<io::http::ClientRequest> enrolment_request(const EnrolOptions& o) {
    std::optional<crypto::KeyPair> token_key;
    if (!o.token.empty()) {
        auto k = core::enrol_token_key(o.token);
        if (!k) return std::unexpected(k.error());
        token_key = *k;
    }
    auto device = load_or_create_device_key(o.state_dir);
    if (!device) return std::unexpected(device.error());
    auto key = load_or_create_tls_key(env_of(o), o.state_dir);
    if (!key) return fail(key.error().code, "tls.key: " + key.error().message);
    auto pub = io::x509::public_key_of(*key);
    if (!pub) return fail(pub.error().code, "tls.key: " + pub.error().message);
    io::http::ClientRequest req;
    req.method = "POST";
    req.url = o.seeder + "/v1/enroll";
    req.local_address = o.local_address;
    req.max_response_bytes = kMaxEnrolmentAnswerBytes;
    req.body = make_enrolment(*device, *pub, token_key ? &*token_key : nullptr, o.hostname,
                              env_of(o).now_unix());
    return req;
}

Result<TlsIdentity> accept_enrolment(const EnrolOptions& o,
                                     const Result<io::http::ClientResponse>& answer) {
    const fs::path& state_dir = o.state_dir;
    if (!answer) return fail(answer.error().code, "enrolment: " + answer.error().message);
    if (answer->status != 200) {
        return fail(answer->status == 403 ? Errc::permission : Errc::http_status,
                    "enrolment refused: HTTP " + std::to_string(answer->status) + ": " +
                        message_of(answer->body));
    }
    const auto doc = nlohmann::json::parse(answer->body, nullptr, false);
    const auto text = [&](const char* field) -> const std::string* {
        if (!doc.is_object() || !doc.contains(field) || !doc[field].is_string()) return nullptr;
        return doc[field].get_ptr<const std::string*>();
    };
    const std::string* cert = text("certificate");
    const std::string* ca = text("ca");
    const std::string* secret = text("web_secret");
    if (!cert || !ca || !secret) {
        return fail(Errc::malformed, "enrolment answer: expected {certificate, ca, web_secret}");
    }
    if (!core::json_strict::is_lower_hex(*secret, 64)) {
        return fail(Errc::malformed, "enrolment answer: web_secret is not 64 hex digits");
    }
    // A renewal answers over the same plain HTTP as the first enrolment, but by then the fleet
    // CA is known: one that names another CA is an attacker's, not a rotation.
    if (o.token.empty()) {
        auto pinned = io::read_file(state_dir / "fleet-ca.pem", io::x509::kMaxPemBytes);
        if (!pinned) return fail(pinned.error().code, "fleet-ca.pem: " + pinned.error().message);
        if (*pinned != *ca) {
            return fail(Errc::bad_signature,
                        "renewal answer names another fleet CA than the one enrolled with");
        }
    }
    auto key = io::read_file(state_dir / "tls.key", io::x509::kMaxPemBytes);
    if (!key) return fail(key.error().code, "tls.key: " + key.error().message);
    io::Env& env = env_of(o);
    const std::int64_t now = env.now_unix();
    if (auto ok = io::x509::check(*cert, *ca, *key, now); !ok) {
        return fail(ok.error().code, "enrolment answer: " + ok.error().message);
    }
    auto info = io::x509::inspect(*cert);
    if (!info) return fail(info.error().code, "enrolment answer: " + info.error().message);
    auto device = load_or_create_device_key(state_dir);
    if (!device) return std::unexpected(device.error());
    if (info->common_name != core::device_id_for(device->public_key)) {
        return fail(Errc::malformed, "enrolment answer: the certificate is not for this device");
    }
    if (info->not_after - now > kMaxCertLifetimeSeconds) {
        return fail(Errc::malformed, "enrolment answer: the certificate is valid for over a year");
    }
    const auto secret_perms = fs::perms::owner_read | fs::perms::owner_write;
    const auto public_perms = fs::perms::owner_read | fs::perms::owner_write |
                              fs::perms::group_read | fs::perms::others_read;
    if (auto ok = env.write_file_atomic(state_dir / "fleet-ca.pem", *ca, public_perms); !ok) {
        return std::unexpected(ok.error());
    }
    if (auto ok = env.write_file_atomic(state_dir / "web.secret", *secret, secret_perms); !ok) {
        return std::unexpected(ok.error());
    }
    // tls.crt last: its presence means "enrolled".
    if (auto ok = env.write_file_atomic(state_dir / "tls.crt", *cert, public_perms); !ok) {
        return std::unexpected(ok.error());
    }
    return TlsIdentity{std::move(*key), *cert, *ca, *secret, info->not_before, info->not_after};
}

Result<TlsIdentity> enroll(const EnrolOptions& o) {
    const auto deadline = std::chrono::steady_clock::now() + o.retry_for;
    auto delay = std::chrono::milliseconds(200);
    Result<io::http::ClientResponse> answer = fail(Errc::network, "not sent");
    for (;;) {
        // A fresh sent_at per attempt: the seeder refuses one not newer than the last.
        auto req = enrolment_request(o);
        if (!req) return std::unexpected(req.error());
        answer = io::http::request_sync(std::move(*req));
        const bool retry = !answer || answer->status >= 500;
        if (!retry || std::chrono::steady_clock::now() + delay > deadline) break;
        spdlog::info("enrolment: seeder not ready ({}); retrying",
                     answer ? "HTTP " + std::to_string(answer->status) : answer.error().message);
        std::this_thread::sleep_for(delay);  // start-up back-off, not synchronisation
        delay = std::min(delay * 2, std::chrono::milliseconds(5000));
    }
    return accept_enrolment(o, answer);
}

}  // namespace patchswarm::daemon
