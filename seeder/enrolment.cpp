#include "seeder/enrolment.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/enrol_token.hpp"
#include "core/envelope.hpp"
#include "core/json_strict.hpp"
#include "io/fs.hpp"
#include "seeder/report.hpp"

namespace patchswarm::seeder {

namespace fs = std::filesystem;
namespace js = core::json_strict;

namespace {

constexpr std::string_view kSchema = R"sql(
CREATE TABLE IF NOT EXISTS enrolment_tokens (
    token_key  TEXT PRIMARY KEY,       -- hex Ed25519 public key; the token (its seed) is not stored
    label      TEXT NOT NULL,
    uses_left  INTEGER NOT NULL,
    used       INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,       -- 0: never
    revoked    INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS enrolled_devices (
    device_id      TEXT PRIMARY KEY,
    device_key     TEXT NOT NULL,      -- hex Ed25519 public key, pinned at enrolment
    tls_public_key TEXT NOT NULL,
    hostname       TEXT NOT NULL,
    remote_address TEXT NOT NULL,
    token_label    TEXT NOT NULL,
    sent_at        INTEGER NOT NULL,   -- endpoint clock of the last request (replay)
    enrolled_at    INTEGER NOT NULL,
    web_secret_sha256 TEXT NOT NULL DEFAULT '',  -- of the web seed secret last handed out
    renewed_at     INTEGER NOT NULL DEFAULT 0,   -- last certificate issued
    cert_not_after INTEGER NOT NULL DEFAULT 0,
    revoked_at     INTEGER NOT NULL DEFAULT 0,   -- 0: not revoked
    token_key      TEXT NOT NULL DEFAULT ''      -- the token of the last enrolment
);
-- Tokens of the first enrolment protocol, which sent the token itself; they cannot sign a
-- request, so they enrol nobody: create new ones.
DROP TABLE IF EXISTS enrol_tokens;
)sql";

constexpr std::size_t kTokenIdChars = 12;

bool printable(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u >= 0x20 && u < 0x7f;
    });
}

bool valid_id_prefix(std::string_view id_prefix) {
    return id_prefix.size() >= 6 && id_prefix.size() <= 64 &&
           js::is_lower_hex(id_prefix, id_prefix.size());
}

Result<crypto::PublicKey> public_key_from_hex(std::string_view hex, std::string_view field) {
    auto key = crypto::from_hex(hex);
    crypto::PublicKey out{};
    if (!key || key->size() != out.size()) {
        return fail(Errc::malformed,
                    "enrolment." + std::string(field) + ": expected 64 lowercase hex");
    }
    std::copy(key->begin(), key->end(), out.begin());
    return out;
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
    auto ca = io::x509::make_ca(name, kCaDays);
    if (!ca) return std::unexpected(ca.error());
    // Key first: a CA certificate without its key would switch enrolment on with no way to
    // issue certificates.
    if (auto ok = io::write_file_atomic(fleet_ca_key(paths), ca->key_pem,
                                        fs::perms::owner_read | fs::perms::owner_write);
        !ok) {
        return std::unexpected(ok.error());
    }
    if (auto ok = io::write_file_atomic(fleet_ca_cert(paths), ca->cert_pem); !ok) {
        return std::unexpected(ok.error());
    }
    return true;
}

Result<std::optional<io::x509::KeyAndCert>> load_fleet_ca(const RepoPaths& paths) {
    auto cert = io::read_file(fleet_ca_cert(paths), io::x509::kMaxPemBytes);
    if (!cert) {
        if (cert.error().code == Errc::not_found) return std::optional<io::x509::KeyAndCert>{};
        return std::unexpected(cert.error());
    }
    struct stat st {};
    if (::stat(fleet_ca_key(paths).c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
        return fail(Errc::permission,
                    fleet_ca_key(paths).string() + " is readable by others (chmod 600)");
    }
    auto key = io::read_file(fleet_ca_key(paths), io::x509::kMaxPemBytes);
    if (!key) return fail(key.error().code, "fleet CA key: " + key.error().message);
    if (auto info = io::x509::inspect(*cert); !info) {
        return fail(info.error().code, "fleet CA: " + info.error().message);
    }
    return std::optional<io::x509::KeyAndCert>(
        io::x509::KeyAndCert{std::move(*key), std::move(*cert)});
}

Result<EnrolmentRequest> parse_enrolment(std::string_view envelope_json) {
    auto env = core::parse_envelope(envelope_json, kMaxEnrolmentBytes);
    if (!env) return std::unexpected(env.error());
    if (env->payload_type != core::payload_type::enrolment) {
        return fail(Errc::malformed, "payload_type is not an enrolment");
    }
    const std::string_view payload(reinterpret_cast<const char*>(env->payload.data()),
                                   env->payload.size());
    auto doc = js::parse(payload, "enrolment");
    if (!doc) return std::unexpected(doc.error());
    std::optional<Error> error;
    js::ObjectReader r(*doc, "enrolment", error);
    r.allow_only({"format", "device_id", "device_key", "tls_public_key", "token_key", "hostname",
                  "sent_at"});
    EnrolmentRequest req;
    if (r.u64("format") != 2 && r.ok()) {
        r.fail_at(r.field("format"), Errc::malformed,
                  "expected 2 (an endpoint older than this seeder: update patchswarmd)");
    }
    req.device_id = r.string("device_id");
    const std::string key_hex = r.string("device_key");
    req.tls_public_key = r.string("tls_public_key");
    const std::optional<std::string> token_hex =
        r.has("token_key") ? std::optional(r.string("token_key")) : std::nullopt;
    req.hostname = r.string("hostname");
    req.sent_at = r.i64("sent_at");
    if (error) return std::unexpected(*error);
    if (req.tls_public_key.size() > io::x509::kMaxPemBytes) {
        return fail(Errc::too_large, "enrolment.tls_public_key: too long");
    }
    if (req.hostname.size() > kMaxHostnameBytes || !printable(req.hostname)) {
        return fail(Errc::malformed, "enrolment.hostname: too long or control characters");
    }
    auto key = public_key_from_hex(key_hex, "device_key");
    if (!key) return std::unexpected(key.error());
    req.device_key = *key;
    if (req.device_id != device_id_for(req.device_key)) {
        return fail(Errc::malformed, "enrolment.device_id does not match device_key");
    }
    if (token_hex) {
        auto token_key = public_key_from_hex(*token_hex, "token_key");
        if (!token_key) return std::unexpected(token_key.error());
        if (*token_key == req.device_key) {
            return fail(Errc::malformed, "enrolment.token_key is the device key");
        }
        req.token_key = *token_key;
    }
    // Two separate checks: a threshold of 2 over {device, token} would not say which is missing.
    const crypto::PublicKey device[] = {req.device_key};
    if (auto ok = core::verify_envelope(*env, core::payload_type::enrolment, device); !ok) {
        return fail(Errc::bad_signature, "enrolment is not signed by its device key");
    }
    if (req.token_key) {
        const crypto::PublicKey token[] = {*req.token_key};
        if (auto ok = core::verify_envelope(*env, core::payload_type::enrolment, token); !ok) {
            return fail(Errc::bad_signature, "enrolment is not signed by the token it names");
        }
    }
    return req;
}

Result<std::unique_ptr<EnrolmentDb>> EnrolmentDb::open(const fs::path& path) {
    auto db = io::Db::open(path);
    if (!db) return std::unexpected(db.error());
    if (auto ok = (*db)->exec(kSchema); !ok) return std::unexpected(ok.error());
    std::unique_ptr<EnrolmentDb> out(new EnrolmentDb(std::move(*db)));
    if (auto ok = out->migrate(); !ok) return std::unexpected(ok.error());
    return out;
}

Result<void> EnrolmentDb::migrate() {
    // Tables made before renewal and revocation. Such devices have no web secret ('' matches
    // nothing), so they fetch from the swarm only until their next renewal, which sets one.
    return db_->add_missing_columns("enrolled_devices",
                                    {{"web_secret_sha256", "TEXT NOT NULL DEFAULT ''"},
                                     {"renewed_at", "INTEGER NOT NULL DEFAULT 0"},
                                     {"cert_not_after", "INTEGER NOT NULL DEFAULT 0"},
                                     {"revoked_at", "INTEGER NOT NULL DEFAULT 0"},
                                     {"token_key", "TEXT NOT NULL DEFAULT ''"}});
}

Result<NewToken> EnrolmentDb::create_token(std::int64_t uses, std::int64_t expires_at,
                                           std::string_view label, std::int64_t now) {
    if (uses < 1 || uses > 1'000'000) return fail(Errc::invalid_argument, "--uses: 1..1000000");
    if (label.size() > kMaxTokenLabelBytes || !printable(label)) {
        return fail(Errc::invalid_argument, "--label: at most 128 printable characters");
    }
    NewToken out;
    out.token = core::make_enrol_token();
    auto key = core::enrol_token_key(out.token);
    if (!key) return std::unexpected(key.error());
    const std::string key_hex = crypto::to_hex(key->public_key);
    out.id = key_hex.substr(0, kTokenIdChars);
    auto stmt = db_->prepare(
        "INSERT INTO enrolment_tokens(token_key, label, uses_left, created_at, expires_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5)");
    if (!stmt) return std::unexpected(stmt.error());
    stmt->bind(1, key_hex).bind(2, label).bind(3, uses).bind(4, now).bind(5, expires_at);
    if (auto ok = stmt->run(); !ok) return std::unexpected(ok.error());
    return out;
}

Result<std::vector<TokenRow>> EnrolmentDb::tokens() {
    auto stmt = db_->prepare(
        "SELECT token_key, label, uses_left, used, created_at, expires_at, revoked "
        "FROM enrolment_tokens ORDER BY created_at, token_key");
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

namespace {

// The one row of `table` whose `column` starts with `id_prefix`: its full value.
// Errc::invalid_argument for a bad prefix, Errc::not_found for none or several.
Result<std::string> unique_by_prefix(io::Db& db, std::string_view table, std::string_view column,
                                     std::string_view id_prefix, std::string_view what) {
    if (!valid_id_prefix(id_prefix)) {
        return fail(Errc::invalid_argument,
                    std::string(what) + " id: at least 6 lowercase hex characters");
    }
    auto stmt = db.prepare("SELECT " + std::string(column) + " FROM " + std::string(table) +
                           " WHERE substr(" + std::string(column) + ", 1, ?2) = ?1 LIMIT 2");
    if (!stmt) return std::unexpected(stmt.error());
    stmt->bind(1, id_prefix).bind(2, static_cast<std::int64_t>(id_prefix.size()));
    std::vector<std::string> found;
    for (;;) {
        auto row = stmt->step();
        if (!row) return std::unexpected(row.error());
        if (!*row) break;
        found.push_back(stmt->column_text(0));
    }
    if (found.size() != 1) {
        return fail(Errc::not_found, "no single " + std::string(what) + " with id " +
                                         std::string(id_prefix) + " (" + std::string(what) +
                                         " list)");
    }
    return found.front();
}

}  // namespace

Result<void> EnrolmentDb::revoke(std::string_view id_prefix) {
    return db_->transaction([&]() -> Result<void> {
        auto key = unique_by_prefix(*db_, "enrolment_tokens", "token_key", id_prefix, "token");
        if (!key) return std::unexpected(key.error());
        auto stmt = db_->prepare("UPDATE enrolment_tokens SET revoked = 1 WHERE token_key = ?1");
        if (!stmt) return std::unexpected(stmt.error());
        stmt->bind(1, *key);
        return stmt->run();
    });
}

Result<std::string> EnrolmentDb::admissible(const EnrolmentRequest& req, std::int64_t now) {
    std::string label;
    if (req.token_key) {
        auto tok = db_->prepare(
            "SELECT label, uses_left, expires_at, revoked FROM enrolment_tokens "
            "WHERE token_key = ?1");
        if (!tok) return std::unexpected(tok.error());
        tok->bind(1, crypto::to_hex(*req.token_key));
        auto row = tok->step();
        if (!row) return std::unexpected(row.error());
        const bool usable = *row && tok->column_int(3) == 0 && tok->column_int(1) >= 1 &&
                            (tok->column_int(2) == 0 || now < tok->column_int(2));
        if (!usable) {
            return fail(Errc::permission, "enrolment token unknown, revoked, expired or used up");
        }
        label = tok->column_text(0);
    }

    auto dev = db_->prepare(
        "SELECT device_key, sent_at, revoked_at, token_label FROM enrolled_devices "
        "WHERE device_id = ?1");
    if (!dev) return std::unexpected(dev.error());
    dev->bind(1, req.device_id);
    auto known = dev->step();
    if (!known) return std::unexpected(known.error());
    if (!*known && !req.token_key) {
        return fail(Errc::permission, "device is not enrolled: renewal needs an enrolment");
    }
    if (*known) {
        if (dev->column_text(0) != crypto::to_hex(req.device_key)) {
            return fail(Errc::permission, "device id is enrolled with another key");
        }
        if (dev->column_int(2) != 0) return fail(Errc::permission, "device is revoked");
        if (req.sent_at <= dev->column_int(1)) {
            return fail(Errc::rollback, "enrolment request is not newer than the last one");
        }
        if (!req.token_key) label = dev->column_text(3);
    }
    return label;
}

Result<void> EnrolmentDb::check(const EnrolmentRequest& req, std::int64_t now) {
    auto label = admissible(req, now);
    if (!label) return std::unexpected(label.error());
    return {};
}

Result<void> EnrolmentDb::grant(const EnrolmentRequest& req, std::string_view remote_address,
                                const Grant& grant, std::int64_t now) {
    const std::string key_hex = crypto::to_hex(req.device_key);
    return db_->transaction([&]() -> Result<void> {
        // Again inside the write transaction: check() ran before it, without a lock.
        auto admitted = admissible(req, now);
        if (!admitted) return std::unexpected(admitted.error());
        const std::string& label = *admitted;

        if (req.token_key) {
            auto use = db_->prepare(
                "UPDATE enrolment_tokens SET uses_left = uses_left - 1, used = used + 1 "
                "WHERE token_key = ?1");
            if (!use) return std::unexpected(use.error());
            use->bind(1, crypto::to_hex(*req.token_key));
            if (auto ok = use->run(); !ok) return ok;
        }

        // enrolled_at changes only with a token: a renewal keeps the enrolment's date.
        auto put = db_->prepare(
            "INSERT INTO enrolled_devices(device_id, device_key, tls_public_key, hostname, "
            "remote_address, token_label, sent_at, enrolled_at, web_secret_sha256, renewed_at, "
            "cert_not_after, token_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?8, ?10, ?12) "
            "ON CONFLICT(device_id) DO UPDATE SET tls_public_key = excluded.tls_public_key, "
            "hostname = excluded.hostname, remote_address = excluded.remote_address, "
            "token_label = excluded.token_label, sent_at = excluded.sent_at, "
            "enrolled_at = CASE WHEN ?11 THEN excluded.enrolled_at ELSE enrolled_at END, "
            "token_key = CASE WHEN ?11 THEN excluded.token_key ELSE token_key END, "
            "web_secret_sha256 = excluded.web_secret_sha256, renewed_at = excluded.renewed_at, "
            "cert_not_after = excluded.cert_not_after");
        if (!put) return std::unexpected(put.error());
        put->bind(1, req.device_id)
            .bind(2, key_hex)
            .bind(3, req.tls_public_key)
            .bind(4, req.hostname)
            .bind(5, remote_address)
            .bind(6, label)
            .bind(7, req.sent_at)
            .bind(8, now)
            .bind(9, grant.web_secret_sha256)
            .bind(10, grant.cert_not_after)
            .bind(11, static_cast<std::int64_t>(req.token_key ? 1 : 0))
            .bind(12, req.token_key ? crypto::to_hex(*req.token_key) : std::string());
        return put->run();
    });
}

Result<bool> EnrolmentDb::is_enrolled(std::string_view device_id, const crypto::PublicKey& key) {
    auto stmt = db_->prepare(
        "SELECT device_key FROM enrolled_devices WHERE device_id = ?1 AND revoked_at = 0");
    if (!stmt) return std::unexpected(stmt.error());
    stmt->bind(1, device_id);
    auto row = stmt->step();
    if (!row) return std::unexpected(row.error());
    return *row && stmt->column_text(0) == crypto::to_hex(key);
}

Result<bool> EnrolmentDb::web_secret_valid(std::string_view device_id, std::string_view web_secret,
                                           std::int64_t now) {
    if (web_secret.empty()) return false;
    auto stmt = db_->prepare(
        "SELECT web_secret_sha256 FROM enrolled_devices "
        "WHERE device_id = ?1 AND revoked_at = 0 AND cert_not_after > ?2");
    if (!stmt) return std::unexpected(stmt.error());
    stmt->bind(1, device_id).bind(2, now);
    auto row = stmt->step();
    if (!row) return std::unexpected(row.error());
    if (!*row) return false;
    const std::string stored = stmt->column_text(0);
    const std::string presented = crypto::sha256_hex(crypto::as_bytes(web_secret));
    return !stored.empty() &&
           crypto::equal_constant_time(crypto::as_bytes(stored), crypto::as_bytes(presented));
}

Result<std::size_t> EnrolmentDb::enrolled_count() {
    auto stmt = db_->prepare("SELECT count(*) FROM enrolled_devices WHERE revoked_at = 0");
    if (!stmt) return std::unexpected(stmt.error());
    auto row = stmt->step();
    if (!row) return std::unexpected(row.error());
    return static_cast<std::size_t>(stmt->column_int(0));
}

Result<std::vector<DeviceRow>> EnrolmentDb::devices() {
    auto stmt = db_->prepare(
        "SELECT device_id, hostname, remote_address, token_label, enrolled_at, renewed_at, "
        "cert_not_after, revoked_at, token_key FROM enrolled_devices "
        "ORDER BY enrolled_at, device_id");
    if (!stmt) return std::unexpected(stmt.error());
    std::vector<DeviceRow> out;
    for (;;) {
        auto row = stmt->step();
        if (!row) return std::unexpected(row.error());
        if (!*row) break;
        DeviceRow d;
        d.device_id = stmt->column_text(0);
        d.hostname = stmt->column_text(1);
        d.remote_address = stmt->column_text(2);
        d.token_label = stmt->column_text(3);
        d.enrolled_at = stmt->column_int(4);
        d.renewed_at = stmt->column_int(5);
        d.cert_not_after = stmt->column_int(6);
        d.revoked_at = stmt->column_int(7);
        d.token_id = stmt->column_text(8).substr(0, kTokenIdChars);
        out.push_back(std::move(d));
    }
    return out;
}

Result<EnrolmentDb::Revoked> EnrolmentDb::revoke_device(std::string_view id_prefix, bool and_token,
                                                        std::int64_t now) {
    Revoked out;
    auto ok = db_->transaction([&]() -> Result<void> {
        auto found = unique_by_prefix(*db_, "enrolled_devices", "device_id", id_prefix, "device");
        if (!found) return std::unexpected(found.error());
        out.device_id = *found;
        auto get =
            db_->prepare("SELECT revoked_at, token_key FROM enrolled_devices WHERE device_id = ?1");
        if (!get) return std::unexpected(get.error());
        get->bind(1, out.device_id);
        if (auto row = get->step(); !row) return std::unexpected(row.error());
        out.already = get->column_int(0) != 0;
        const std::string token_key = get->column_text(1);
        out.token_id = token_key.substr(0, kTokenIdChars);
        // The web secret goes too: nothing it opens stays open.
        auto stmt = db_->prepare(
            "UPDATE enrolled_devices SET revoked_at = ?2, web_secret_sha256 = '' "
            "WHERE device_id = ?1 AND revoked_at = 0");
        if (!stmt) return std::unexpected(stmt.error());
        stmt->bind(1, out.device_id).bind(2, now);
        if (auto done = stmt->run(); !done) return done;
        if (!and_token || token_key.empty()) return {};
        auto tok = db_->prepare("UPDATE enrolment_tokens SET revoked = 1 WHERE token_key = ?1");
        if (!tok) return std::unexpected(tok.error());
        tok->bind(1, token_key);
        return tok->run();
    });
    if (!ok) return std::unexpected(ok.error());
    return out;
}

}  // namespace patchswarm::seeder
