// libFuzzer target for core::parse_feed and core::parse_root. Input: a feed or root JSON
// document (an envelope's payload); every input goes to both parsers. Beyond "no crash":
// an accepted document satisfies its validator and bounds, and its canonical form re-parses to
// an equal value and re-serialises to the same bytes.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>

#include "core/feed.hpp"
#include "core/manifest.hpp"
#include "core/root.hpp"
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

void check_root(const core::RootDocument& r) {
    FUZZ_CHECK(core::validate_root(r).has_value());
    FUZZ_CHECK(r.format == 1 && r.version >= 1);
    FUZZ_CHECK(r.keys.size() <= core::kMaxRootKeys);
    for (const auto* role : {&r.root, &r.release, &r.feed}) {
        FUZZ_CHECK(role->threshold >= 1 && role->threshold <= role->keyids.size());
        FUZZ_CHECK(role->threshold <= core::kMaxThreshold);
        // Every key a role counts must be usable as an Ed25519 public key.
        FUZZ_CHECK(core::key_set(r, *role).keys.size() == role->keyids.size());
    }
    // The online feed key can never count for roots or releases.
    for (const auto& id : r.feed.keyids) {
        for (const auto* role : {&r.root, &r.release}) {
            FUZZ_CHECK(std::find(role->keyids.begin(), role->keyids.end(), id) ==
                       role->keyids.end());
        }
    }
    FUZZ_CHECK(!core::check_root_fresh(r, r.expires).has_value());

    const std::string canonical = core::serialize_root(r);
    auto again = core::parse_root(canonical);
    FUZZ_CHECK_MSG(again.has_value(), "canonical root refused: " + again.error().message);
    FUZZ_CHECK(*again == r);
    FUZZ_CHECK(core::serialize_root(*again) == canonical);
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
    if (auto r = core::parse_root(text)) {
        check_root(*r);
        accepted = true;
    } else {
        FUZZ_CHECK(is_refusal(r.error().code) && !r.error().message.empty());
    }
    return accepted;
}

}  // namespace patchswarm::fuzz

PATCHSWARM_FUZZ_ENTRY(feed_one)
