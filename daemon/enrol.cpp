#include "daemon/enrol.hpp"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "common/fsutil.hpp"
#include "common/http.hpp"
#include "common/x509.hpp"

namespace patchswarm::daemon {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kMaxAnswerBytes = 64 * 1024;

std::int64_t now_unix() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

Result<std::string> load_or_create_tls_key(const fs::path& state_dir) {
    const fs::path path = state_dir / "tls.key";
    auto existing = read_file(path, x509::kMaxPemBytes);
    if (existing) return existing;
    if (existing.error().code != Errc::not_found) return existing;
    auto key = x509::generate_key();
    if (!key) return key;
    if (auto ok = write_file_atomic(path, *key, fs::perms::owner_read | fs::perms::owner_write);
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
        if (auto ok = crypto::write_keypair(base, crypto::generate_keypair()); !ok) {
            return fail(ok.error().code, "cannot create device key: " + ok.error().message);
        }
        spdlog::info("created device key {}.key", base.string());
    }
    auto kp = crypto::load_secret_key(base.string() + ".key");
    if (!kp) return fail(kp.error().code, "device key: " + kp.error().message);
    return kp;
}

Result<std::optional<TlsIdentity>> load_tls_identity(const fs::path& state_dir) {
    auto cert = read_file(state_dir / "tls.crt", x509::kMaxPemBytes);
    if (!cert) {
        if (cert.error().code == Errc::not_found) return std::optional<TlsIdentity>{};
        return std::unexpected(cert.error());
    }
    auto key = read_file(state_dir / "tls.key", x509::kMaxPemBytes);
    if (!key) return fail(key.error().code, "tls.key: " + key.error().message);
    auto ca = read_file(state_dir / "fleet-ca.pem", x509::kMaxPemBytes);
    if (!ca) return fail(ca.error().code, "fleet-ca.pem: " + ca.error().message);
    if (auto ok = x509::check(*cert, *ca, *key, now_unix()); !ok) {
        return fail(ok.error().code, "tls.crt: " + ok.error().message);
    }
    return std::optional<TlsIdentity>(
        TlsIdentity{std::move(*key), std::move(*cert), std::move(*ca)});
}

std::string make_enrolment(const crypto::KeyPair& device_key, std::string_view tls_public_key,
                           std::string_view token, std::string_view hostname,
                           std::int64_t sent_at) {
    const nlohmann::json doc = {{"format", 1},
                                {"device_id", crypto::key_id(device_key.public_key).substr(0, 32)},
                                {"device_key", crypto::to_hex(device_key.public_key)},
                                {"tls_public_key", tls_public_key},
                                {"token", token},
                                {"hostname", hostname},
                                {"sent_at", sent_at}};
    const std::string payload = doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    const crypto::KeyPair keys[] = {device_key};
    return crypto::serialize_envelope(
        crypto::sign_envelope(crypto::payload_type::enrolment, crypto::as_bytes(payload), keys));
}

Result<TlsIdentity> enroll(const EnrolOptions& o) {
    auto device = load_or_create_device_key(o.state_dir);
    if (!device) return std::unexpected(device.error());
    auto key = load_or_create_tls_key(o.state_dir);
    if (!key) return fail(key.error().code, "tls.key: " + key.error().message);
    auto pub = x509::public_key_of(*key);
    if (!pub) return fail(pub.error().code, "tls.key: " + pub.error().message);

    const auto deadline = std::chrono::steady_clock::now() + o.retry_for;
    auto delay = std::chrono::milliseconds(200);
    Result<http::ClientResponse> answer = fail(Errc::network, "not sent");
    for (;;) {
        http::ClientRequest req;
        req.method = "POST";
        req.url = o.seeder + "/v1/enroll";
        req.local_address = o.local_address;
        req.max_response_bytes = kMaxAnswerBytes;
        // A fresh sent_at per attempt: the seeder refuses one not newer than the last.
        req.body = make_enrolment(*device, *pub, o.token, o.hostname, now_unix());
        answer = http::request_sync(std::move(req));
        const bool retry = !answer || answer->status >= 500;
        if (!retry || std::chrono::steady_clock::now() + delay > deadline) break;
        spdlog::info("enrolment: seeder not ready ({}); retrying",
                     answer ? "HTTP " + std::to_string(answer->status) : answer.error().message);
        std::this_thread::sleep_for(delay);  // start-up back-off, not synchronisation
        delay = std::min(delay * 2, std::chrono::milliseconds(5000));
    }
    if (!answer) return fail(answer.error().code, "enrolment: " + answer.error().message);
    if (answer->status != 200) {
        return fail(answer->status == 403 ? Errc::permission : Errc::http_status,
                    "enrolment refused: HTTP " + std::to_string(answer->status) + ": " +
                        message_of(answer->body));
    }
    const auto doc = nlohmann::json::parse(answer->body, nullptr, false);
    if (!doc.is_object() || !doc.contains("certificate") || !doc["certificate"].is_string() ||
        !doc.contains("ca") || !doc["ca"].is_string()) {
        return fail(Errc::malformed, "enrolment answer: expected {certificate, ca}");
    }
    TlsIdentity id{*key, doc["certificate"].get<std::string>(), doc["ca"].get<std::string>()};
    if (auto ok = x509::check(id.cert_pem, id.ca_pem, id.key_pem, now_unix()); !ok) {
        return fail(ok.error().code, "enrolment answer: " + ok.error().message);
    }
    if (auto ok = write_file_atomic(o.state_dir / "fleet-ca.pem", id.ca_pem); !ok) {
        return std::unexpected(ok.error());
    }
    // tls.crt last: its presence means "enrolled".
    if (auto ok = write_file_atomic(o.state_dir / "tls.crt", id.cert_pem); !ok) {
        return std::unexpected(ok.error());
    }
    return id;
}

}  // namespace patchswarm::daemon
