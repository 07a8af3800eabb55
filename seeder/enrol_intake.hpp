// Enrolment intake: POST /v1/enroll (a first enrolment signed by a token, or a renewal signed
// by the device key alone) answered with a certificate of the fleet CA and a fresh web seed
// secret; and the check of those secrets for the web seed. Only when the repository has a
// fleet CA.
//
// Threading: the io_context thread.
#pragma once

#include <chrono>

#include "io/env.hpp"
#include "io/x509.hpp"
#include "seeder/enrolment.hpp"
#include "seeder/routes.hpp"

namespace patchswarm::seeder {

class EnrolIntake final : public EnrolService {
  public:
    // `db`, `ca` and `env` must outlive the intake. `cert_lifetime`: of the certificates issued.
    EnrolIntake(EnrolmentDb& db, const io::x509::KeyAndCert& ca, io::Env& env,
                std::chrono::seconds cert_lifetime)
        : db_(db), ca_(ca), env_(env), cert_lifetime_(cert_lifetime) {}

    io::http::Response post_enroll(const io::http::Request& req) override;
    [[nodiscard]] Result<bool> web_secret_valid(const std::string& device_id,
                                                const std::string& secret) override;

  private:
    EnrolmentDb& db_;
    const io::x509::KeyAndCert& ca_;
    io::Env& env_;
    std::chrono::seconds cert_lifetime_;
};

}  // namespace patchswarm::seeder
