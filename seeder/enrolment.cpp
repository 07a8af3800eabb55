#include "seeder/enrolment.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/fsutil.hpp"
#include "common/json_strict.hpp"
#include "seeder/report.hpp"

namespace patchswarm::seeder {

namespace fs = std::filesystem;
namespace js = json_strict;

namespace {

constexpr std::string_view kSchema = R"sql(
CREATE TABLE IF NOT EXISTS enrol_tokens (
    token_sha256 TEXT PRIMARY KEY,     -- the token itself is never stored
    label        TEXT NOT NULL,
    uses_left    INTEGER NOT NULL,
    used         INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,     -- 0: never
    revoked      INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS enrolled_devices (
    device_id      TEXT PRIMARY KEY,
    device_key     TEXT NOT NULL,      -- hex Ed25519 public key, pinned at enrolment
    tls_public_key TEXT NOT NULL,
    hostname       TEXT NOT NULL,
    remote_address TEXT NOT NULL,
    token_label    TEXT NOT NULL,
    sent_at        INTEGER NOT NULL,   -- endpoint clock of the last enrolment (replay)
    enrolled_at    INTEGER NOT NULL
);
)sql";

constexpr std::size_t kTokenBytes = 32;
constexpr std::string_view kTokenPrefix = "pst_";
constexpr std::size_t kTokenIdChars = 12;
constexpr std::size_t kMaxTokenChars = 128;

bool printable(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u >= 0x20 && u < 0x7f;
    });
}

std::string token_hash(std::string_view token) {
    return crypto::sha256_hex(crypto::as_bytes(token));
}

}  // namespace

fs::path fleet_ca_key(const RepoPaths& paths) {
    return paths.keys_dir() / "fleet-ca.key";
}
fs::path fleet_ca_cert(const RepoPaths& paths) {
    return paths.keys_dir() / "fleet-ca.pem";
}

Result<bool> init_fleet_ca(const RepoPaths& paths, std::string_view name) {
    std::error_code ec;
    if (fs::exists(fleet_ca_cert(paths), ec) || fs::exists(fleet_ca_key(paths), ec)) return false;
    fs::create_directories(paths.keys_dir(), ec);
    if (ec) return fail(Errc::io, paths.keys_dir().string() + ": " + ec.message());
    auto ca = x509::make_ca(name, kCaDays);
    if (!ca) return std::unexpected(ca.error());
    // Key first: a CA certificate without its key would switch enrolment on with no way to
    // issue certificates.
    if (auto ok = write_file_atomic(fleet_ca_key(paths), ca->key_pem,
                                    fs::perms::owner_read | fs::perms::owner_write);
        !ok) {
        return std::unexpected(ok.error());
    }
    if (auto ok = write_file_atomic(fleet_ca_cert(paths), ca->cert_pem); !ok) {
        return std::unexpected(ok.error());
    }
    return true;
}

Result<std::optional<x509::KeyAndCert>> load_fleet_ca(const RepoPaths& paths) {
    auto cert = read_file(fleet_ca_cert(paths), x509::kMaxPemBytes);
    if (!cert) {
        if (cert.error().code == Errc::not_found) return std::optional<x509::KeyAndCert>{};
        return std::unexpected(cert.error());
    }
    struct stat st {};
    if (::stat(fleet_ca_key(paths).c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
        return fail(Errc::permission,
                    fleet_ca_key(paths).string() + " is readable by others (chmod 600)");
    }
    auto key = read_file(fleet_ca_key(paths), x509::kMaxPemBytes);
    if (!key) return fail(key.error().code, "fleet CA key: " + key.error().message);
    if (auto info = x509::inspect(*cert); !info) {
        return fail(info.error().code, "fleet CA: " + info.error().message);
    }
    return std::optional<x509::KeyAndCert>(x509::KeyAndCert{std::move(*key), std::move(*cert)});
}

Result<EnrolmentRequest> parse_enrolment(std::string_view envelope_json) {
    auto env = crypto::parse_envelope(envelope_json, kMaxEnrolmentBytes);
    if (!env) return std::unexpected(env.error());
    if (env->payload_type != crypto::payload_type::enrolment) {
        return fail(Errc::malformed, "payload_type is not an enrolment");
    }
    const std::string_view payload(reinterpret_cast<const char*>(env->payload.data()),
                                   env->payload.size());
    auto doc = js::parse(payload, "enrolment");
    if (!doc) return std::unexpected(doc.error());
    std::optional<Error> error;
    js::ObjectReader r(*doc, "enrolment", error);
    r.allow_only(
        {"format", "device_id", "device_key", "tls_public_key", "token", "hostname", "sent_at"});
    EnrolmentRequest req;
    if (r.u64("format") != 1 && r.ok()) r.fail_at(r.field("format"), Errc::malformed, "expected 1");
    req.device_id = r.string("device_id");
    const std::string key_hex = r.string("device_key");
    req.tls_public_key = r.string("tls_public_key");
    req.token = r.string("token");
    req.hostname = r.string("hostname");
    req.sent_at = r.i64("sent_at");
    if (error) return std::unexpected(*error);
    if (req.tls_public_key.size() > x509::kMaxPemBytes) {
        return fail(Errc::too_large, "enrolment.tls_public_key: too long");
    }
    if (req.token.empty() || req.token.size() > kMaxTokenChars || !printable(req.token)) {
        return fail(Errc::malformed, "enrolment.token: not a token");
    }
    if (req.hostname.size() > kMaxHostnameBytes || !printable(req.hostname)) {
        return fail(Errc::malformed, "enrolment.hostname: too long or control characters");
    }
    auto key = crypto::from_hex(key_hex);
    if (!key || key->size() != req.device_key.size()) {
        return fail(Errc::malformed, "enrolment.device_key: expected 64 lowercase hex");
    }
    std::copy(key->begin(), key->end(), req.device_key.begin());
    if (req.device_id != device_id_for(req.device_key)) {
        return fail(Errc::malformed, "enrolment.device_id does not match device_key");
    }
    const crypto::PublicKey trusted[] = {req.device_key};
    if (auto ok = crypto::verify_envelope(*env, crypto::payload_type::enrolment, trusted); !ok) {
        return fail(Errc::bad_signature, "enrolment is not signed by its device key");
    }
    return req;
}

Result<std::unique_ptr<EnrolmentDb>> EnrolmentDb::open(const fs::path& path) {
    auto db = Db::open(path);
    if (!db) return std::unexpected(db.error());
    if (auto ok = (*db)->exec(kSchema); !ok) return std::unexpected(ok.error());
    return std::unique_ptr<EnrolmentDb>(new EnrolmentDb(std::move(*db)));
}

Result<NewToken> EnrolmentDb::create_token(std::int64_t uses, std::int64_t expires_at,
                                           std::string_view label, std::int64_t now) {
    if (uses < 1 || uses > 1'000'000) return fail(Errc::invalid_argument, "--uses: 1..1000000");
    if (label.size() > kMaxTokenLabelBytes || !printable(label)) {
        return fail(Errc::invalid_argument, "--label: at most 128 printable characters");
    }
    NewToken out;
    out.token = std::string(kTokenPrefix) + crypto::to_hex(crypto::random_bytes(kTokenBytes));
    const std::string hash = token_hash(out.token);
    out.id = hash.substr(0, kTokenIdChars);
    auto stmt = db_->prepare(
        "INSERT INTO enrol_tokens(token_sha256, label, uses_left, created_at, expires_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5)");
    if (!stmt) return std::unexpected(stmt.error());
    stmt->bind(1, hash).bind(2, label).bind(3, uses).bind(4, now).bind(5, expires_at);
    if (auto ok = stmt->run(); !ok) return std::unexpected(ok.error());
    return out;
}

Result<std::vector<TokenRow>> EnrolmentDb::tokens() {
    auto stmt = db_->prepare(
        "SELECT token_sha256, label, uses_left, used, created_at, expires_at, revoked "
        "FROM enrol_tokens ORDER BY created_at, token_sha256");
    if (!stmt) return std::unexpected(stmt.error());
    std::vector<TokenRow> out;
    for (;;) {
        auto row = stmt->step();
        if (!row) return std::unexpected(row.error());
        if (!*row) break;
        TokenRow t;
        t.id = stmt->column_text(0).substr(0, kTokenIdChars);
        t.label = stmt->column_text(1);
        t.uses_left = stmt->column_int(2);
        t.used = stmt->column_int(3);
        t.created_at = stmt->column_int(4);
        t.expires_at = stmt->column_int(5);
        t.revoked = stmt->column_int(6) != 0;
        out.push_back(std::move(t));
    }
    return out;
}

Result<void> EnrolmentDb::revoke(std::string_view id_prefix) {
    if (id_prefix.size() < 6 || !std::all_of(id_prefix.begin(), id_prefix.end(), [](char c) {
            return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        })) {
        return fail(Errc::invalid_argument, "token id: at least 6 lowercase hex characters");
    }
    return db_->transaction([&]() -> Result<void> {
        auto count = db_->prepare(
            "SELECT count(*) FROM enrol_tokens WHERE substr(token_sha256, 1, ?2) = ?1");
        if (!count) return std::unexpected(count.error());
        count->bind(1, id_prefix).bind(2, static_cast<std::int64_t>(id_prefix.size()));
        auto row = count->step();
        if (!row) return std::unexpected(row.error());
        if (count->column_int(0) != 1) {
            return fail(Errc::not_found,
                        "no single token with id " + std::string(id_prefix) + " (token list)");
        }
        auto stmt = db_->prepare(
            "UPDATE enrol_tokens SET revoked = 1 WHERE substr(token_sha256, 1, ?2) = ?1");
        if (!stmt) return std::unexpected(stmt.error());
        stmt->bind(1, id_prefix).bind(2, static_cast<std::int64_t>(id_prefix.size()));
        return stmt->run();
    });
}

Result<void> EnrolmentDb::redeem(const EnrolmentRequest& req, std::string_view remote_address,
                                 std::int64_t now) {
    // The lookup is by the token's SHA-256: timing reveals at most how much of a hash matched,
    // which says nothing about any token.
    const std::string hash = token_hash(req.token);
    const std::string key_hex = crypto::to_hex(req.device_key);
    return db_->transaction([&]() -> Result<void> {
        auto tok = db_->prepare(
            "SELECT label, uses_left, expires_at, revoked FROM enrol_tokens "
            "WHERE token_sha256 = ?1");
        if (!tok) return std::unexpected(tok.error());
        tok->bind(1, hash);
        auto row = tok->step();
        if (!row) return std::unexpected(row.error());
        const auto refused = [] {
            return fail(Errc::permission, "enrolment token unknown, revoked, expired or used up");
        };
        if (!*row) return refused();
        const std::string label = tok->column_text(0);
        const std::int64_t uses_left = tok->column_int(1);
        const std::int64_t expires_at = tok->column_int(2);
        if (tok->column_int(3) != 0 || uses_left < 1 || (expires_at != 0 && now >= expires_at)) {
            return refused();
        }

        auto dev =
            db_->prepare("SELECT device_key, sent_at FROM enrolled_devices WHERE device_id = ?1");
        if (!dev) return std::unexpected(dev.error());
        dev->bind(1, req.device_id);
        auto known = dev->step();
        if (!known) return std::unexpected(known.error());
        if (*known) {
            if (dev->column_text(0) != key_hex) {
                return fail(Errc::permission, "device id is enrolled with another key");
            }
            if (req.sent_at <= dev->column_int(1)) {
                return fail(Errc::rollback, "enrolment request is not newer than the last one");
            }
        }

        auto use = db_->prepare(
            "UPDATE enrol_tokens SET uses_left = uses_left - 1, used = used + 1 "
            "WHERE token_sha256 = ?1");
        if (!use) return std::unexpected(use.error());
        use->bind(1, hash);
        if (auto ok = use->run(); !ok) return ok;

        auto put = db_->prepare(
            "INSERT INTO enrolled_devices(device_id, device_key, tls_public_key, hostname, "
            "remote_address, token_label, sent_at, enrolled_at) "
            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
            "ON CONFLICT(device_id) DO UPDATE SET tls_public_key = excluded.tls_public_key, "
            "hostname = excluded.hostname, remote_address = excluded.remote_address, "
            "token_label = excluded.token_label, sent_at = excluded.sent_at, "
            "enrolled_at = excluded.enrolled_at");
        if (!put) return std::unexpected(put.error());
        put->bind(1, req.device_id)
            .bind(2, key_hex)
            .bind(3, req.tls_public_key)
            .bind(4, req.hostname)
            .bind(5, remote_address)
            .bind(6, label)
            .bind(7, req.sent_at)
            .bind(8, now);
        return put->run();
    });
}

Result<bool> EnrolmentDb::is_enrolled(std::string_view device_id, const crypto::PublicKey& key) {
    auto stmt = db_->prepare("SELECT device_key FROM enrolled_devices WHERE device_id = ?1");
    if (!stmt) return std::unexpected(stmt.error());
    stmt->bind(1, device_id);
    auto row = stmt->step();
    if (!row) return std::unexpected(row.error());
    return *row && stmt->column_text(0) == crypto::to_hex(key);
}

Result<bool> EnrolmentDb::is_enrolled_address(std::string_view address) {
    // endpoints.remote_address is where the device's last accepted report came from.
    auto stmt = db_->prepare(
        "SELECT 1 FROM enrolled_devices d WHERE d.remote_address = ?1 "
        "OR EXISTS (SELECT 1 FROM endpoints e WHERE e.device_id = d.device_id "
        "AND e.remote_address = ?1 AND e.device_key = d.device_key) LIMIT 1");
    if (!stmt) return std::unexpected(stmt.error());
    stmt->bind(1, address);
    auto row = stmt->step();
    if (!row) return std::unexpected(row.error());
    return *row;
}

Result<std::size_t> EnrolmentDb::enrolled_count() {
    auto stmt = db_->prepare("SELECT count(*) FROM enrolled_devices");
    if (!stmt) return std::unexpected(stmt.error());
    auto row = stmt->step();
    if (!row) return std::unexpected(row.error());
    return static_cast<std::size_t>(stmt->column_int(0));
}

}  // namespace patchswarm::seeder
