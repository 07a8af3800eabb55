#include "seeder/enrol_intake.hpp"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "core/rollout.hpp"
#include "crypto/crypto.hpp"

namespace patchswarm::seeder {

Result<bool> EnrolIntake::web_secret_valid(const std::string& device_id,
                                           const std::string& secret) {
    return db_.web_secret_valid(device_id, secret, env_.now_unix());
}

io::http::Response EnrolIntake::post_enroll(const io::http::Request& req) {
    auto request = parse_enrolment(req.body);
    if (!request) {
        spdlog::warn("enrolment from {} refused: {}", req.remote_address, request.error().message);
        return error_response(request.error(), refusal_status(request.error().code));
    }
    const char* what = request->token_key ? "enrolment" : "renewal";
    const std::int64_t now = env_.now_unix();
    if (request->sent_at < now - kEnrolmentClockSkew ||
        request->sent_at > now + kEnrolmentClockSkew) {
        return error_response(400, "expired",
                              std::string(what) + " sent_at is more than " +
                                  std::to_string(kEnrolmentClockSkew) +
                                  "s from the seeder's clock");
    }
    const auto refuse = [&](const Error& e) {
        spdlog::warn("{} of {} ({}) from {} refused: {}", what, request->device_id.substr(0, 8),
                     request->hostname, req.remote_address, e.message);
        return error_response(e, refusal_status(e.code));
    };
    // Refusals first, before a certificate is signed or fleet.db locked: anyone can sign a
    // "renewal" with a key of their own.
    if (auto ok = db_.check(*request, now); !ok) return refuse(ok.error());
    // Issued before the token is spent, so a bad key costs no use of it.
    auto cert =
        io::x509::issue(ca_, request->tls_public_key, request->device_id, cert_lifetime_.count());
    if (!cert) {
        spdlog::warn("{} from {} refused: {}", what, req.remote_address, cert.error().message);
        return error_response(400, "malformed", "tls_public_key: " + cert.error().message);
    }
    auto info = io::x509::inspect(*cert);
    if (!info) return error_response(info.error(), 500);
    // A fresh web seed secret with every certificate: one that leaked stops working at the next
    // renewal, and a revoked device's goes at once.
    const std::string web_secret = crypto::to_hex(crypto::random_bytes(kWebSecretBytes));
    const Grant grant{crypto::sha256_hex(crypto::as_bytes(web_secret)), info->not_after};
    if (auto ok = db_.grant(*request, req.remote_address, grant, now); !ok) {
        return refuse(ok.error());
    }
    spdlog::info("endpoint {} ({}) {} from {}: certificate until {}",
                 request->device_id.substr(0, 8), request->hostname,
                 request->token_key ? "enrolled" : "renewed", req.remote_address,
                 core::format_utc(info->not_after));
    const nlohmann::json body = {
        {"certificate", *cert}, {"ca", ca_.cert_pem}, {"web_secret", web_secret}};
    return io::http::json_response(200, body.dump());
}

}  // namespace patchswarm::seeder
