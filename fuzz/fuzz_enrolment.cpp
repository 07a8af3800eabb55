// libFuzzer target for seeder::parse_enrolment, the parser behind POST /v1/enroll (the one
// request a device sends before HQ knows it). Input, two forms (as for fuzz_report):
// - "P" followed by an enrolment *payload*: the harness signs it with the throwaway device key
//   and the throwaway token key, so mutations reach the payload decoder behind the signature
//   checks;
// - anything else: the raw request body (an enrolment envelope).
// Beyond "no crash": an accepted request names its own device key, its fields are within their
// bounds, and the same payload signed by another device key, without the token key it names, or
// under another payload type, is refused.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/envelope.hpp"
#include "crypto/crypto.hpp"
#include "fuzz/fuzz_support.hpp"
#include "io/x509.hpp"
#include "seeder/enrolment.hpp"
#include "seeder/report.hpp"

namespace patchswarm::fuzz {

namespace enrolment_detail {

bool is_refusal(Errc code) {
    return code == Errc::malformed || code == Errc::too_large || code == Errc::bad_signature;
}

void check_accepted(const seeder::EnrolmentRequest& r) {
    FUZZ_CHECK(r.device_id == seeder::device_id_for(r.device_key));
    FUZZ_CHECK(r.tls_public_key.size() <= io::x509::kMaxPemBytes);
    FUZZ_CHECK(!r.token_key || *r.token_key != r.device_key);
    FUZZ_CHECK(r.hostname.size() <= seeder::kMaxHostnameBytes && !has_control_char(r.hostname));
}

void check_binding(const crypto::Bytes& payload, const seeder::EnrolmentRequest& accepted) {
    // (Only called for payloads the harness signed: their device key is device_key().)
    FUZZ_CHECK(!seeder::parse_enrolment(signed_envelope(core::payload_type::enrolment, payload,
                                                        release_key(), &token_key()))
                    .has_value());
    if (accepted.token_key) {
        FUZZ_CHECK(!seeder::parse_enrolment(
                        signed_envelope(core::payload_type::enrolment, payload, device_key()))
                        .has_value());
    }
    FUZZ_CHECK(
        !seeder::parse_enrolment(signed_envelope(core::payload_type::report, payload, device_key()))
             .has_value());
}

}  // namespace enrolment_detail

bool enrolment_one(const std::uint8_t* data, std::size_t size) {
    using namespace enrolment_detail;
    return device_signed_one(
        data, size, core::payload_type::enrolment,
        [](const std::string& body) { return seeder::parse_enrolment(body); }, is_refusal,
        check_accepted, check_binding, &token_key());
}

}  // namespace patchswarm::fuzz

PATCHSWARM_FUZZ_ENTRY(enrolment_one)
