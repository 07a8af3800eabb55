// Enrolment building blocks: the X.509 adapter, the signed enrolment request (token proof,
// renewal), the token and device store with revocation and web seed secrets (real SQLite files,
// no network).
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "core/enrol_token.hpp"
#include "core/envelope.hpp"
#include "core/manifest.hpp"
#include "crypto/crypto.hpp"
#include "daemon/enrol.hpp"
#include "io/key_files.hpp"
#include "io/x509.hpp"
#include "seeder/enrolment.hpp"
#include "support/process.hpp"
#include "support/signing.hpp"

namespace x509 = patchswarm::io::x509;
namespace io = patchswarm::io;
namespace seeder = patchswarm::seeder;
namespace crypto = patchswarm::crypto;
namespace core = patchswarm::core;
using patchswarm::Errc;

using patchswarm::test::wall_now;
namespace {

constexpr std::int64_t kNow = 1'800'000'000;

struct Endpoint {
    std::string key = *x509::generate_key();
    std::string pub = *x509::public_key_of(key);
};

}  // namespace

TEST_CASE("the fleet CA issues endpoint certificates that check against it and nothing else",
          "[core][enrolment]") {
    crypto::init();
    const auto ca = x509::make_ca("test fleet CA", 3650);
    REQUIRE(ca);
    const auto other_ca = x509::make_ca("someone else's CA", 3650);
    REQUIRE(other_ca);
    const Endpoint ep;
    const auto cert = x509::issue(*ca, ep.pub, "0123456789abcdef0123456789abcdef", 365 * 86'400);
    REQUIRE(cert);

    const auto info = x509::inspect(*cert);
    REQUIRE(info);
    CHECK(info->common_name == "0123456789abcdef0123456789abcdef");
    CHECK(info->not_after - info->not_before >= 365 * 86'400);
    CHECK(x509::check(*cert, ca->cert_pem, ep.key, wall_now()));

    SECTION("another CA did not sign it") {
        const auto r = x509::check(*cert, other_ca->cert_pem, ep.key, wall_now());
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::bad_signature);
    }
    SECTION("it is not valid for another key") {
        const Endpoint other;
        const auto r = x509::check(*cert, ca->cert_pem, other.key, wall_now());
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::bad_signature);
    }
    SECTION("it expires") {
        const auto r = x509::check(*cert, ca->cert_pem, ep.key, wall_now() + 400 * 86'400);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::expired);
        // Without a time, only the signature and the key are checked (an expired certificate
        // is still the endpoint's, to renew).
        CHECK(x509::check(*cert, ca->cert_pem, ep.key, std::nullopt));
    }
    SECTION("short-lived: valid from kBackdateSeconds before issue until the lifetime ends") {
        const auto brief = x509::issue(*ca, ep.pub, "brief", 60);
        REQUIRE(brief);
        const auto b = x509::inspect(*brief);
        REQUIRE(b);
        CHECK(b->not_after - b->not_before == 60 + x509::kBackdateSeconds);
        CHECK(x509::issue(*ca, ep.pub, "too brief", 9).error().code == Errc::invalid_argument);
    }
    SECTION("bad inputs are refused, not parsed") {
        CHECK(x509::issue(*ca, "not a key", "x", 60).error().code == Errc::malformed);
        CHECK(x509::issue(*ca, ep.pub, "bad\nname", 60).error().code == Errc::invalid_argument);
        CHECK(x509::issue(*ca, ep.pub, std::string(65, 'a'), 60).error().code ==
              Errc::invalid_argument);
        CHECK(x509::inspect(std::string(x509::kMaxPemBytes + 1, 'A')).error().code ==
              Errc::too_large);
        CHECK(x509::inspect("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
                  .error()
                  .code == Errc::malformed);
        CHECK(x509::public_key_of(ep.pub).error().code == Errc::malformed);
    }
    SECTION("DH parameters for libtorrent's SSL context") {
        const auto dh = x509::dh_params_pem();
        REQUIRE(dh);
        CHECK(dh->find("BEGIN DH PARAMETERS") != std::string::npos);
    }
}

TEST_CASE("an enrolment request is accepted only signed by its own device key and its token",
          "[core][enrolment]") {
    crypto::init();
    const auto device = crypto::generate_keypair();
    const Endpoint ep;
    const std::string token = core::make_enrol_token();
    const auto token_key = core::enrol_token_key(token);
    REQUIRE(token_key);
    const std::string body =
        patchswarm::daemon::make_enrolment(device, ep.pub, &*token_key, "desk-1", kNow);
    const auto req = seeder::parse_enrolment(body);
    REQUIRE(req);
    CHECK(req->device_key == device.public_key);
    CHECK(req->device_id == core::device_id_for(device.public_key));
    CHECK(req->token_key == token_key->public_key);
    CHECK(req->tls_public_key == ep.pub);
    CHECK(req->sent_at == kNow);
    // The token itself is not in the request: a recording of it enrols nobody else.
    CHECK(body.find(token.substr(4)) == std::string::npos);
    const auto env = core::parse_envelope(body, seeder::kMaxEnrolmentBytes);
    REQUIRE(env);
    const std::string payload(env->payload.begin(), env->payload.end());
    CHECK(payload.find(token.substr(4)) == std::string::npos);

    // Each row re-signs the same payload with other keys.
    const auto stranger = crypto::generate_keypair();
    struct Row {
        const char* attack;
        std::vector<crypto::KeyPair> keys;
        std::string_view type;
        Errc expected;
    };
    const std::vector<Row> rows = {
        {"signed by another device key",
         {stranger, *token_key},
         core::payload_type::enrolment,
         Errc::bad_signature},
        {"names a token it was not signed with (the token is guessed or recorded)",
         {device},
         core::payload_type::enrolment,
         Errc::bad_signature},
        {"signed by the token only",
         {*token_key},
         core::payload_type::enrolment,
         Errc::bad_signature},
        {"a report envelope is not an enrolment",
         {device, *token_key},
         core::payload_type::report,
         Errc::malformed},
    };
    for (const auto& row : rows) {
        INFO(row.attack);
        const auto forged =
            core::serialize_envelope(core::sign_envelope(row.type, env->payload, row.keys));
        const auto r = seeder::parse_enrolment(forged);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == row.expected);
    }

    SECTION("a renewal carries no token and is signed by the device key alone") {
        const auto renewal = seeder::parse_enrolment(
            patchswarm::daemon::make_enrolment(device, ep.pub, nullptr, "desk-1", kNow + 1));
        REQUIRE(renewal);
        CHECK_FALSE(renewal->token_key);
    }
    SECTION("malformed tokens are refused before anything is sent") {
        for (const char* bad : {"pst_abc", "", "pst_", "PST_00", "pst_zz"}) {
            INFO(bad);
            CHECK(core::enrol_token_key(bad).error().code == Errc::invalid_argument);
        }
        CHECK(core::enrol_token_key("pst_" + std::string(64, 'A')).error().code ==
              Errc::invalid_argument);
        CHECK(core::enrol_token_key("pst_" + std::string(64, '0')));
    }
    SECTION("oversized") {
        CHECK_FALSE(seeder::parse_enrolment(std::string(seeder::kMaxEnrolmentBytes + 1, ' ')));
    }
}

namespace {

seeder::EnrolmentRequest request_for(const crypto::KeyPair& device, const std::string& token,
                                     std::int64_t sent_at) {
    seeder::EnrolmentRequest r;
    r.device_key = device.public_key;
    r.device_id = core::device_id_for(device.public_key);
    r.tls_public_key = "PEM";
    if (!token.empty()) r.token_key = core::enrol_token_key(token)->public_key;
    r.hostname = "desk";
    r.sent_at = sent_at;
    return r;
}

std::string id_of(const crypto::KeyPair& device) {
    return core::device_id_for(device.public_key);
}

const seeder::Grant kGrant{"", kNow + 600};

}  // namespace

TEST_CASE("enrolment tokens: used up, expired, revoked or unknown tokens enrol nobody",
          "[enrolment]") {
    crypto::init();
    patchswarm::test::TempDir dir("ps-enrol");
    auto db = seeder::EnrolmentDb::open(dir / "fleet.db");
    REQUIRE(db);
    auto& edb = **db;

    const auto a = crypto::generate_keypair();
    const auto b = crypto::generate_keypair();
    const auto c = crypto::generate_keypair();

    const auto two = edb.create_token(2, 0, "two uses", kNow);
    REQUIRE(two);
    CHECK(two->token.starts_with("pst_"));
    const auto expired = edb.create_token(5, kNow + 10, "short", kNow);
    REQUIRE(expired);
    const auto revoked = edb.create_token(5, 0, "revoked", kNow);
    REQUIRE(revoked);
    REQUIRE(edb.revoke(revoked->id));

    CHECK(edb.grant(request_for(a, two->token, kNow), "127.80.1.1", kGrant, kNow));
    CHECK(edb.grant(request_for(b, two->token, kNow), "127.80.1.2", kGrant, kNow));
    CHECK(edb.grant(request_for(c, two->token, kNow), "127.80.1.3", kGrant, kNow).error().code ==
          Errc::permission);  // used up
    CHECK(edb.grant(request_for(c, expired->token, kNow + 10), "127.80.1.3", kGrant, kNow + 10)
              .error()
              .code == Errc::permission);
    CHECK(
        edb.grant(request_for(c, revoked->token, kNow), "127.80.1.3", kGrant, kNow).error().code ==
        Errc::permission);
    CHECK(edb.grant(request_for(c, core::make_enrol_token(), kNow), "127.80.1.3", kGrant, kNow)
              .error()
              .code == Errc::permission);  // unknown

    CHECK(*edb.enrolled_count() == 2);
    CHECK(*edb.is_enrolled(id_of(a), a.public_key));
    CHECK_FALSE(*edb.is_enrolled(id_of(c), c.public_key));
    // Same device id, another key: not enrolled.
    CHECK_FALSE(*edb.is_enrolled(id_of(a), b.public_key));

    // A replayed (not newer) enrolment of a device is refused and costs no use of the token.
    const auto more = edb.create_token(3, 0, "more", kNow);
    REQUIRE(more);
    CHECK(edb.grant(request_for(a, more->token, kNow), "127.80.1.1", kGrant, kNow).error().code ==
          Errc::rollback);
    CHECK(edb.grant(request_for(a, more->token, kNow + 1), "127.80.1.1", kGrant, kNow));

    // check() refuses what grant() would, before any certificate is made, and spends nothing.
    CHECK(edb.check(request_for(c, two->token, kNow), kNow).error().code == Errc::permission);
    CHECK(edb.check(request_for(a, more->token, kNow + 1), kNow).error().code == Errc::rollback);
    CHECK(edb.check(request_for(c, more->token, kNow), kNow));
    CHECK(edb.check(request_for(c, more->token, kNow), kNow));

    const auto rows = edb.tokens();
    REQUIRE(rows);
    for (const auto& t : *rows) {
        if (t.label == "two uses") CHECK((t.used == 2 && t.uses_left == 0));
        if (t.label == "revoked") CHECK((t.revoked && t.used == 0));
        if (t.label == "more") CHECK((t.used == 1 && t.uses_left == 2));
    }
    CHECK(edb.revoke("zz").error().code == Errc::invalid_argument);
    CHECK(edb.revoke("ffffff").error().code == Errc::not_found);
}

TEST_CASE("renewal, revocation and web seed secrets of enrolled devices", "[enrolment]") {
    crypto::init();
    patchswarm::test::TempDir dir("ps-enrol-dev");
    auto db = seeder::EnrolmentDb::open(dir / "fleet.db");
    REQUIRE(db);
    auto& edb = **db;
    const auto token = edb.create_token(10, 0, "desks", kNow);
    REQUIRE(token);
    const auto a = crypto::generate_keypair();
    const auto b = crypto::generate_keypair();
    const auto stranger = crypto::generate_keypair();
    const std::string secret_a = "a-secret";
    const auto grant_for = [](const std::string& secret, std::int64_t until) {
        return seeder::Grant{crypto::sha256_hex(crypto::as_bytes(secret)), until};
    };
    REQUIRE(edb.grant(request_for(a, token->token, kNow), "127.80.1.1",
                      grant_for(secret_a, kNow + 100), kNow));
    REQUIRE(edb.grant(request_for(b, token->token, kNow), "127.80.1.2",
                      grant_for("b-secret", kNow + 100), kNow));

    // The web seed admits a device by its id and current secret, nothing else.
    CHECK(*edb.web_secret_valid(id_of(a), secret_a, kNow));
    CHECK_FALSE(*edb.web_secret_valid(id_of(a), "b-secret", kNow));  // another device's secret
    CHECK_FALSE(*edb.web_secret_valid(id_of(a), "", kNow));
    CHECK_FALSE(*edb.web_secret_valid(id_of(stranger), secret_a, kNow));
    // A secret lives no longer than the certificate it came with.
    CHECK_FALSE(*edb.web_secret_valid(id_of(a), secret_a, kNow + 100));

    SECTION("a renewal needs an enrolled, unrevoked device with its own key, newer each time") {
        CHECK(edb.grant(request_for(a, "", kNow + 50), "127.80.1.1",
                        grant_for("a-secret-2", kNow + 150), kNow + 50));
        // The new secret replaces the old one.
        CHECK(*edb.web_secret_valid(id_of(a), "a-secret-2", kNow + 100));
        CHECK_FALSE(*edb.web_secret_valid(id_of(a), secret_a, kNow + 50));
        CHECK(edb.grant(request_for(a, "", kNow + 50), "127.80.1.1", kGrant, kNow + 50)
                  .error()
                  .code == Errc::rollback);  // replayed
        CHECK(edb.grant(request_for(stranger, "", kNow), "127.80.1.9", kGrant, kNow).error().code ==
              Errc::permission);  // never enrolled
        auto impostor = request_for(stranger, "", kNow + 60);
        impostor.device_id = id_of(a);  // a's id with another key
        CHECK(edb.grant(impostor, "127.80.1.9", kGrant, kNow + 60).error().code ==
              Errc::permission);
        const auto devices = edb.devices();
        REQUIRE(devices);
        REQUIRE(devices->size() == 2);
        for (const auto& d : *devices) {
            if (d.device_id != id_of(a)) continue;
            CHECK(d.enrolled_at == kNow);  // a renewal keeps the enrolment's date
            CHECK(d.renewed_at == kNow + 50);
            CHECK(d.cert_not_after == kNow + 150);
            CHECK(d.token_label == "desks");
        }
    }
    SECTION("a revoked device is out: reports, web seed, renewal and a new token are refused") {
        const auto revoked = edb.revoke_device(id_of(a).substr(0, 8), false, kNow + 10);
        REQUIRE(revoked);
        CHECK(revoked->device_id == id_of(a));
        CHECK(revoked->token_id == token->id);
        CHECK_FALSE(revoked->already);
        CHECK(edb.revoke_device(id_of(a), false, kNow + 11)->already);
        CHECK_FALSE(*edb.is_enrolled(id_of(a), a.public_key));
        CHECK_FALSE(*edb.web_secret_valid(id_of(a), secret_a, kNow + 10));
        CHECK(edb.grant(request_for(a, "", kNow + 20), "127.80.1.1", kGrant, kNow + 20)
                  .error()
                  .code == Errc::permission);
        CHECK(edb.grant(request_for(a, token->token, kNow + 21), "127.80.1.1", kGrant, kNow + 21)
                  .error()
                  .code == Errc::permission);
        // b is untouched.
        CHECK(*edb.is_enrolled(id_of(b), b.public_key));
        CHECK(*edb.web_secret_valid(id_of(b), "b-secret", kNow + 10));
        CHECK(*edb.enrolled_count() == 1);
        // The token is still good for a new device key (a stolen machine could use it) ...
        const auto c = crypto::generate_keypair();
        CHECK(edb.grant(request_for(c, token->token, kNow + 30), "127.80.1.3", kGrant, kNow + 30));
        // ... unless revoked with the device.
        const auto with_token = edb.revoke_device(id_of(c), true, kNow + 31);
        REQUIRE(with_token);
        const auto d = crypto::generate_keypair();
        CHECK(edb.grant(request_for(d, token->token, kNow + 32), "127.80.1.4", kGrant, kNow + 32)
                  .error()
                  .code == Errc::permission);
        CHECK(*edb.is_enrolled(id_of(b), b.public_key));  // enrolled before: still in
        CHECK(edb.revoke_device("zz", false, kNow).error().code == Errc::invalid_argument);
        CHECK(edb.revoke_device("ffffffff", false, kNow).error().code == Errc::not_found);
    }
}

TEST_CASE("an endpoint keeps only an answer for its own key and device, from its enrolment's CA",
          "[enrolment]") {
    crypto::init();
    patchswarm::test::TempDir dir("ps-enrol-answer");
    patchswarm::daemon::EnrolOptions o;
    o.state_dir = dir.path();
    o.token = core::make_enrol_token();
    REQUIRE(patchswarm::daemon::enrolment_request(o));  // creates device.key and tls.key
    const auto device = io::load_public_key(dir / "device.pub");
    REQUIRE(device);
    const std::string device_id = core::device_id_for(*device);
    const auto tls_key = patchswarm::test::read_text(dir / "tls.key");
    const auto tls_pub = x509::public_key_of(tls_key);
    REQUIRE(tls_pub);
    const auto ca = x509::make_ca("fleet CA", 3650);
    const auto other_ca = x509::make_ca("attacker CA", 3650);
    REQUIRE((ca && other_ca));
    const Endpoint stranger;
    const std::string secret(64, 'a');

    using Answer = patchswarm::Result<patchswarm::io::http::ClientResponse>;
    const auto answer = [&](const x509::KeyAndCert& from, const std::string& public_key,
                            const std::string& cn, std::int64_t lifetime,
                            const std::string& web_secret = std::string(64, 'a')) {
        patchswarm::io::http::ClientResponse r;
        r.status = 200;
        r.body = nlohmann::json{{"certificate", *x509::issue(from, public_key, cn, lifetime)},
                                {"ca", from.cert_pem},
                                {"web_secret", web_secret}}
                     .dump();
        return Answer(r);
    };

    // The first enrolment takes the CA it is given (trust on first use).
    REQUIRE(patchswarm::daemon::accept_enrolment(o, answer(*ca, *tls_pub, device_id, 600)));
    const std::string enrolled_cert = patchswarm::test::read_text(dir / "tls.crt");
    CHECK(patchswarm::test::read_text(dir / "web.secret") == secret);

    o.token.clear();  // from now on: renewals
    patchswarm::io::http::ClientResponse refused;
    refused.status = 403;
    refused.body = R"({"error":"permission","message":"device is revoked"})";
    struct Row {
        const char* attack;
        Answer answer;
        Errc expected;
    };
    const std::vector<Row> rows = {
        {"a renewal answer from another CA (a tampered answer on plain HTTP)",
         answer(*other_ca, *tls_pub, device_id, 600), Errc::bad_signature},
        {"a certificate for another TLS key", answer(*ca, stranger.pub, device_id, 600),
         Errc::bad_signature},
        {"a certificate for another device", answer(*ca, *tls_pub, std::string(32, 'b'), 600),
         Errc::malformed},
        {"a certificate for two years", answer(*ca, *tls_pub, device_id, 2 * 365 * 86'400),
         Errc::malformed},
        {"a web secret that is not 64 hex digits",
         answer(*ca, *tls_pub, device_id, 600, "secret; rm -rf /"), Errc::malformed},
        {"a refusal", Answer(refused), Errc::permission},
    };
    for (const auto& row : rows) {
        INFO(row.attack);
        const auto r = patchswarm::daemon::accept_enrolment(o, row.answer);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == row.expected);
        // Nothing changed on disk.
        CHECK(patchswarm::test::read_text(dir / "tls.crt") == enrolled_cert);
        CHECK(patchswarm::test::read_text(dir / "web.secret") == secret);
    }
    const auto renewed = patchswarm::daemon::accept_enrolment(
        o, answer(*ca, *tls_pub, device_id, 900, std::string(64, 'b')));
    REQUIRE(renewed);
    CHECK(patchswarm::test::read_text(dir / "tls.crt") != enrolled_cert);
    CHECK(patchswarm::test::read_text(dir / "web.secret") == std::string(64, 'b'));
    CHECK(patchswarm::daemon::renew_at(*renewed) > renewed->not_before + x509::kBackdateSeconds);
    CHECK(patchswarm::daemon::renew_at(*renewed) < renewed->not_after);
}
