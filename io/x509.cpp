// OpenSSL adapter: the only translation unit that includes OpenSSL headers.
#include "io/x509.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/dh.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <ctime>
#include <memory>

namespace patchswarm::io::x509 {

namespace {

struct Free {
    void operator()(BIO* p) const { BIO_free(p); }
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
    void operator()(X509* p) const { X509_free(p); }
    void operator()(DH* p) const { DH_free(p); }
    void operator()(BIGNUM* p) const { BN_free(p); }
    void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
template <class T>
using Ptr = std::unique_ptr<T, Free>;

constexpr std::int64_t kHour = 3600;
constexpr std::int64_t kDay = 86'400;

std::int64_t now_unix() {
    return static_cast<std::int64_t>(std::time(nullptr));
}

Result<Ptr<BIO>> read_bio(std::string_view pem) {
    if (pem.size() > kMaxPemBytes) {
        return fail(Errc::too_large, "PEM larger than " + std::to_string(kMaxPemBytes) + " bytes");
    }
    Ptr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!bio) return fail(Errc::internal, "BIO_new_mem_buf failed");
    return bio;
}

std::string drain(BIO* bio) {
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    return n > 0 ? std::string(data, static_cast<std::size_t>(n)) : std::string();
}

Result<Ptr<EVP_PKEY>> read_private(std::string_view pem) {
    auto bio = read_bio(pem);
    if (!bio) return std::unexpected(bio.error());
    Ptr<EVP_PKEY> key(PEM_read_bio_PrivateKey(bio->get(), nullptr, nullptr, nullptr));
    if (!key) return fail(Errc::malformed, "not a PEM private key");
    return key;
}

Result<Ptr<EVP_PKEY>> read_public(std::string_view pem) {
    auto bio = read_bio(pem);
    if (!bio) return std::unexpected(bio.error());
    Ptr<EVP_PKEY> key(PEM_read_bio_PUBKEY(bio->get(), nullptr, nullptr, nullptr));
    if (!key) return fail(Errc::malformed, "not a PEM public key");
    return key;
}

Result<Ptr<X509>> read_cert(std::string_view pem) {
    auto bio = read_bio(pem);
    if (!bio) return std::unexpected(bio.error());
    Ptr<X509> cert(PEM_read_bio_X509(bio->get(), nullptr, nullptr, nullptr));
    if (!cert) return fail(Errc::malformed, "not a PEM certificate");
    return cert;
}

Result<Ptr<EVP_PKEY>> new_key() {
    Ptr<EVP_PKEY> key(EVP_EC_gen("P-256"));
    if (!key) return fail(Errc::internal, "EC key generation failed");
    return key;
}

std::string key_pem(EVP_PKEY* key) {
    Ptr<BIO> bio(BIO_new(BIO_s_mem()));
    if (!bio ||
        PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
        return {};
    return drain(bio.get());
}

std::string cert_pem(X509* cert) {
    Ptr<BIO> bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return {};
    return drain(bio.get());
}

bool valid_name(std::string_view name) {
    return !name.empty() && name.size() <= kMaxCommonNameBytes &&
           std::all_of(name.begin(), name.end(), [](char c) {
               const auto u = static_cast<unsigned char>(c);
               return u >= 0x20 && u < 0x7f;
           });
}

bool add_ext(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    Ptr<X509_EXTENSION> ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
    return ext && X509_add_ext(cert, ext.get(), -1) == 1;
}

std::int64_t to_unix(const ASN1_TIME* t) {
    struct tm tm {};
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
    return static_cast<std::int64_t>(timegm(&tm));
}

// A certificate for `subject_key`, signed by `issuer_key`; `issuer` null: self-signed CA.
Result<Ptr<X509>> build(EVP_PKEY* subject_key, std::string_view cn, std::int64_t not_before,
                        std::int64_t not_after, X509* issuer, EVP_PKEY* issuer_key, bool is_ca) {
    Ptr<X509> cert(X509_new());
    if (!cert) return fail(Errc::internal, "X509_new failed");
    X509_set_version(cert.get(), 2);
    unsigned char serial[16];
    if (RAND_bytes(serial, sizeof serial) != 1) return fail(Errc::internal, "RAND_bytes failed");
    serial[0] &= 0x7f;  // positive
    Ptr<BIGNUM> bn(BN_bin2bn(serial, sizeof serial, nullptr));
    if (!bn || !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get())))
        return fail(Errc::internal, "serial number");
    ASN1_TIME_set(X509_getm_notBefore(cert.get()), static_cast<time_t>(not_before));
    ASN1_TIME_set(X509_getm_notAfter(cert.get()), static_cast<time_t>(not_after));
    X509_set_pubkey(cert.get(), subject_key);
    X509_NAME* name = X509_get_subject_name(cert.get());
    const std::string cn_text(cn);
    if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>(cn_text.c_str()), -1, -1,
                                   0) != 1) {
        return fail(Errc::internal, "subject name");
    }
    X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name);
    X509* issuer_cert = issuer ? issuer : cert.get();
    const bool ok =
        is_ca
            ? add_ext(cert.get(), issuer_cert, NID_basic_constraints, "critical,CA:TRUE") &&
                  add_ext(cert.get(), issuer_cert, NID_key_usage, "critical,keyCertSign,cRLSign") &&
                  add_ext(cert.get(), issuer_cert, NID_subject_key_identifier, "hash")
            : add_ext(cert.get(), issuer_cert, NID_basic_constraints, "critical,CA:FALSE") &&
                  add_ext(cert.get(), issuer_cert, NID_key_usage,
                          "critical,digitalSignature,keyAgreement") &&
                  add_ext(cert.get(), issuer_cert, NID_ext_key_usage, "serverAuth,clientAuth") &&
                  // libtorrent accepts a peer of an SSL torrent only if one of its DNS names
                  // (or else its CN) is the torrent's name or "*": one certificate serves every
                  // release of the fleet.
                  add_ext(cert.get(), issuer_cert, NID_subject_alt_name, "DNS:*");
    if (!ok) return fail(Errc::internal, "certificate extensions");
    if (X509_sign(cert.get(), issuer_key, EVP_sha256()) <= 0) {
        return fail(Errc::internal, "X509_sign failed");
    }
    return cert;
}

}  // namespace

Result<std::string> generate_key() {
    auto key = new_key();
    if (!key) return std::unexpected(key.error());
    std::string pem = key_pem(key->get());
    if (pem.empty()) return fail(Errc::internal, "cannot write key PEM");
    return pem;
}

Result<std::string> public_key_of(std::string_view pem) {
    auto key = read_private(pem);
    if (!key) return std::unexpected(key.error());
    Ptr<BIO> bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_PUBKEY(bio.get(), key->get()) != 1) {
        return fail(Errc::internal, "cannot write public key PEM");
    }
    return drain(bio.get());
}

Result<KeyAndCert> make_ca(std::string_view common_name, int days) {
    if (!valid_name(common_name)) return fail(Errc::invalid_argument, "bad CA name");
    if (days < 1) return fail(Errc::invalid_argument, "CA validity must be at least a day");
    auto key = new_key();
    if (!key) return std::unexpected(key.error());
    const std::int64_t now = now_unix();
    auto cert = build(key->get(), common_name, now - kHour, now + days * kDay, nullptr, key->get(),
                      /*is_ca=*/true);
    if (!cert) return std::unexpected(cert.error());
    KeyAndCert out{key_pem(key->get()), cert_pem(cert->get())};
    if (out.key_pem.empty() || out.cert_pem.empty()) return fail(Errc::internal, "CA PEM");
    return out;
}

Result<std::string> issue(const KeyAndCert& ca, std::string_view public_key_pem,
                          std::string_view common_name, std::int64_t lifetime_s) {
    if (!valid_name(common_name)) {
        return fail(Errc::invalid_argument, "certificate name must be 1.." +
                                                std::to_string(kMaxCommonNameBytes) +
                                                " printable ASCII characters");
    }
    if (lifetime_s < 10) return fail(Errc::invalid_argument, "validity must be at least 10 s");
    auto ca_key = read_private(ca.key_pem);
    if (!ca_key) return fail(ca_key.error().code, "CA key: " + ca_key.error().message);
    auto ca_cert = read_cert(ca.cert_pem);
    if (!ca_cert) return fail(ca_cert.error().code, "CA certificate: " + ca_cert.error().message);
    auto subject = read_public(public_key_pem);
    if (!subject) return std::unexpected(subject.error());
    if (EVP_PKEY_get_base_id(subject->get()) != EVP_PKEY_EC) {
        return fail(Errc::malformed, "public key is not an EC key");
    }
    const std::int64_t now = now_unix();
    const std::int64_t ca_end = to_unix(X509_get0_notAfter(ca_cert->get()));
    const std::int64_t end = std::min<std::int64_t>(now + lifetime_s, ca_end);
    auto cert = build(subject->get(), common_name, now - kBackdateSeconds, end, ca_cert->get(),
                      ca_key->get(),
                      /*is_ca=*/false);
    if (!cert) return std::unexpected(cert.error());
    std::string pem = cert_pem(cert->get());
    if (pem.empty()) return fail(Errc::internal, "certificate PEM");
    return pem;
}

Result<CertInfo> inspect(std::string_view pem) {
    auto cert = read_cert(pem);
    if (!cert) return std::unexpected(cert.error());
    CertInfo info;
    char cn[kMaxCommonNameBytes * 4 + 1] = {};
    const int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert->get()), NID_commonName, cn,
                                            sizeof cn);
    if (n > 0) info.common_name.assign(cn, static_cast<std::size_t>(n));
    info.not_before = to_unix(X509_get0_notBefore(cert->get()));
    info.not_after = to_unix(X509_get0_notAfter(cert->get()));
    return info;
}

Result<void> check(std::string_view cert_text, std::string_view ca_text, std::string_view key_text,
                   std::optional<std::int64_t> now) {
    auto cert = read_cert(cert_text);
    if (!cert) return std::unexpected(cert.error());
    auto ca = read_cert(ca_text);
    if (!ca) return fail(ca.error().code, "CA certificate: " + ca.error().message);
    EVP_PKEY* ca_key = X509_get0_pubkey(ca->get());
    if (!ca_key || X509_verify(cert->get(), ca_key) != 1) {
        return fail(Errc::bad_signature, "certificate is not signed by this CA");
    }
    if (now && (*now < to_unix(X509_get0_notBefore(cert->get())) ||
                *now > to_unix(X509_get0_notAfter(cert->get())))) {
        return fail(Errc::expired, "certificate is not valid now");
    }
    if (!key_text.empty()) {
        auto key = read_private(key_text);
        if (!key) return std::unexpected(key.error());
        if (X509_check_private_key(cert->get(), key->get()) != 1) {
            return fail(Errc::bad_signature, "certificate is not for this key");
        }
    }
    return {};
}

Result<std::string> dh_params_pem() {
    Ptr<DH> dh(DH_new_by_nid(NID_ffdhe2048));
    if (!dh) return fail(Errc::internal, "ffdhe2048 unavailable");
    Ptr<BIO> bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_DHparams(bio.get(), dh.get()) != 1) {
        return fail(Errc::internal, "cannot write DH parameters");
    }
    return drain(bio.get());
}

}  // namespace patchswarm::io::x509
