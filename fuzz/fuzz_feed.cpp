// libFuzzer target for core::parse_feed and core::parse_delegation. Input: a feed or delegation
// JSON document (an envelope's payload); every input goes to both parsers. Beyond "no crash":
// an accepted document satisfies its validator and bounds, and its canonical form re-parses to
// an equal value and re-serialises to the same bytes.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>

#include "common/feed.hpp"
#include "common/manifest.hpp"
#include "fuzz/fuzz_support.hpp"

namespace patchswarm::fuzz {

namespace feed_detail {

bool is_refusal(Errc code) {
    return code == Errc::malformed || code == Errc::too_large || code == Errc::unsafe_path;
}

void check_feed(const core::Feed& f) {
    FUZZ_CHECK(core::validate_feed(f).has_value());
    FUZZ_CHECK(f.format == 1);
    FUZZ_CHECK(core::validate_release_id(f.repository).has_value());
    FUZZ_CHECK(f.expires > f.issued);
    FUZZ_CHECK(f.releases.size() <= core::kMaxFeedReleases);
    FUZZ_CHECK(f.halted.size() <= core::kMaxFeedReleases);
    std::set<std::string> ids;
    for (const auto& e : f.releases) {
        // Release ids become folder names on the endpoint.
        FUZZ_CHECK(core::validate_release_id(e.id).has_value());
        FUZZ_CHECK(is_lower_hex(e.manifest_sha256, 64));
        FUZZ_CHECK(ids.insert(e.id).second);
    }
    std::set<std::string> halted;
    for (const auto& id : f.halted) {
        FUZZ_CHECK(core::validate_release_id(id).has_value());
        FUZZ_CHECK(halted.insert(id).second);
    }
    FUZZ_CHECK(core::check_feed_fresh(f, f.issued).has_value());
    FUZZ_CHECK(!core::check_feed_fresh(f, f.expires).has_value());

    const std::string canonical = core::serialize_feed(f);
    auto again = core::parse_feed(canonical);
    FUZZ_CHECK_MSG(again.has_value(), "canonical feed refused: " + again.error().message);
    FUZZ_CHECK(*again == f);
    FUZZ_CHECK(core::serialize_feed(*again) == canonical);
}

void check_delegation(const core::Delegation& d) {
    FUZZ_CHECK(core::validate_delegation(d).has_value());
    FUZZ_CHECK(d.format == 1 && d.role == "feed");
    // The named key must be usable as an Ed25519 public key.
    auto key = crypto::from_hex(d.public_key);
    FUZZ_CHECK(key.has_value() && key->size() == crypto::PublicKey{}.size());
    FUZZ_CHECK(!core::check_delegation_fresh(d, d.expires).has_value());

    const std::string canonical = core::serialize_delegation(d);
    auto again = core::parse_delegation(canonical);
    FUZZ_CHECK_MSG(again.has_value(), "canonical delegation refused: " + again.error().message);
    FUZZ_CHECK(*again == d);
    FUZZ_CHECK(core::serialize_delegation(*again) == canonical);
}

}  // namespace feed_detail

bool feed_one(const std::uint8_t* data, std::size_t size) {
    using namespace feed_detail;
    const std::string_view text = as_text(data, size);
    bool accepted = false;
    if (auto f = core::parse_feed(text)) {
        check_feed(*f);
        accepted = true;
    } else {
        FUZZ_CHECK(is_refusal(f.error().code) && !f.error().message.empty());
    }
    if (auto d = core::parse_delegation(text)) {
        check_delegation(*d);
        accepted = true;
    } else {
        FUZZ_CHECK(is_refusal(d.error().code) && !d.error().message.empty());
    }
    return accepted;
}

}  // namespace patchswarm::fuzz

PATCHSWARM_FUZZ_ENTRY(feed_one)
