// Enrolment building blocks: the X.509 adapter, the signed enrolment request and the token
// store (real SQLite files, no network).
#include <catch2/catch.hpp>

#include "common/x509.hpp"
#include "crypto/crypto.hpp"
#include "daemon/enrol.hpp"
#include "seeder/enrolment.hpp"
#include "support/process.hpp"

namespace x509 = patchswarm::x509;
namespace seeder = patchswarm::seeder;
namespace crypto = patchswarm::crypto;
using patchswarm::Errc;

namespace {

constexpr std::int64_t kNow = 1'800'000'000;

std::int64_t wall_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

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
    const auto cert = x509::issue(*ca, ep.pub, "0123456789abcdef0123456789abcdef", 365);
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
    }
    SECTION("bad inputs are refused, not parsed") {
        CHECK(x509::issue(*ca, "not a key", "x", 1).error().code == Errc::malformed);
        CHECK(x509::issue(*ca, ep.pub, "bad\nname", 1).error().code == Errc::invalid_argument);
        CHECK(x509::issue(*ca, ep.pub, std::string(65, 'a'), 1).error().code ==
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

TEST_CASE("an enrolment request is accepted only signed by its own device key",
          "[core][enrolment]") {
    crypto::init();
    const auto device = crypto::generate_keypair();
    const Endpoint ep;
    const std::string body =
        patchswarm::daemon::make_enrolment(device, ep.pub, "pst_abc", "desk-1", kNow);
    const auto req = seeder::parse_enrolment(body);
    REQUIRE(req);
    CHECK(req->device_key == device.public_key);
    CHECK(req->device_id == crypto::key_id(device.public_key).substr(0, 32));
    CHECK(req->token == "pst_abc");
    CHECK(req->tls_public_key == ep.pub);
    CHECK(req->sent_at == kNow);

    SECTION("signed by another key") {
        auto env = crypto::parse_envelope(body, seeder::kMaxEnrolmentBytes);
        REQUIRE(env);
        const auto stranger = crypto::generate_keypair();
        const crypto::KeyPair keys[] = {stranger};
        const auto forged = crypto::serialize_envelope(
            crypto::sign_envelope(crypto::payload_type::enrolment, env->payload, keys));
        CHECK(seeder::parse_enrolment(forged).error().code == Errc::bad_signature);
    }
    SECTION("a report envelope is not an enrolment") {
        auto env = crypto::parse_envelope(body, seeder::kMaxEnrolmentBytes);
        REQUIRE(env);
        const crypto::KeyPair keys[] = {device};
        const auto report = crypto::serialize_envelope(
            crypto::sign_envelope(crypto::payload_type::report, env->payload, keys));
        CHECK(seeder::parse_enrolment(report).error().code == Errc::malformed);
    }
    SECTION("oversized") {
        CHECK_FALSE(seeder::parse_enrolment(std::string(seeder::kMaxEnrolmentBytes + 1, ' ')));
    }
}

TEST_CASE("enrolment tokens: used up, expired, revoked or unknown tokens enrol nobody",
          "[enrolment]") {
    crypto::init();
    patchswarm::test::TempDir dir("ps-enrol");
    auto db = seeder::EnrolmentDb::open(dir / "fleet.db");
    REQUIRE(db);
    auto& edb = **db;

    const auto request = [](const std::string& token, std::int64_t sent_at,
                            const crypto::KeyPair& device) {
        seeder::EnrolmentRequest r;
        r.device_key = device.public_key;
        r.device_id = crypto::key_id(device.public_key).substr(0, 32);
        r.tls_public_key = "PEM";
        r.token = token;
        r.hostname = "desk";
        r.sent_at = sent_at;
        return r;
    };
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

    CHECK(edb.redeem(request(two->token, kNow, a), "127.80.1.1", kNow));
    CHECK(edb.redeem(request(two->token, kNow, b), "127.80.1.2", kNow));
    CHECK(edb.redeem(request(two->token, kNow, c), "127.80.1.3", kNow).error().code ==
          Errc::permission);  // used up
    CHECK(edb.redeem(request(expired->token, kNow + 10, c), "127.80.1.3", kNow + 10).error().code ==
          Errc::permission);
    CHECK(edb.redeem(request(revoked->token, kNow, c), "127.80.1.3", kNow).error().code ==
          Errc::permission);
    CHECK(edb.redeem(request("pst_nope", kNow, c), "127.80.1.3", kNow).error().code ==
          Errc::permission);

    CHECK(*edb.enrolled_count() == 2);
    CHECK(*edb.is_enrolled(crypto::key_id(a.public_key).substr(0, 32), a.public_key));
    CHECK_FALSE(*edb.is_enrolled(crypto::key_id(c.public_key).substr(0, 32), c.public_key));
    // Same device id, another key: not enrolled.
    CHECK_FALSE(*edb.is_enrolled(crypto::key_id(a.public_key).substr(0, 32), b.public_key));
    CHECK(*edb.is_enrolled_address("127.80.1.1"));
    CHECK_FALSE(*edb.is_enrolled_address("127.80.1.3"));

    // A replayed (not newer) enrolment of a device is refused and costs no use of the token.
    const auto more = edb.create_token(3, 0, "more", kNow);
    REQUIRE(more);
    CHECK(edb.redeem(request(more->token, kNow, a), "127.80.1.1", kNow).error().code ==
          Errc::rollback);
    CHECK(edb.redeem(request(more->token, kNow + 1, a), "127.80.1.1", kNow));

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
