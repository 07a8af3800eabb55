// Sites: named sets of address ranges (docs/ARCHITECTURE.md, "Sites"). A branch office is one
// site; the seeder's tracker keeps each site's peers among themselves, and endpoints split their
// traffic into LAN (inside their site's ranges) and WAN (everything else).
//
// Pure logic: parsing `NAME=CIDR[,CIDR...]`, CIDR containment and classifying an address into a
// site. An address outside every configured range belongs to an automatic site named after its
// /24 (IPv4) or /64 (IPv6) network, e.g. "auto:10.9.8.0/24" or "auto:2001:db8:1:2::/64".
//
// Thread-safety: every type here is a value; a const SiteMap may be shared between threads.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"

namespace patchswarm::core {

inline constexpr std::size_t kMaxSites = 1000;
inline constexpr std::size_t kMaxSiteRanges = 1000;  // CIDRs per site
inline constexpr std::size_t kMaxSiteNameBytes = 64;
inline constexpr std::string_view kAutoSitePrefix = "auto:";

// An IPv4 or IPv6 address. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are held as IPv4, so an
// address has one form whichever socket family it came in on.
struct IpAddress {
    bool v6 = false;
    std::array<std::uint8_t, 16> bytes{};  // IPv4 uses the first 4

    auto operator<=>(const IpAddress&) const = default;
};

// "10.0.0.1", "2001:db8::1", "::ffff:10.0.0.1"; nullopt if not a literal address.
std::optional<IpAddress> parse_ip(std::string_view text);
std::string to_string(const IpAddress& address);

// A network: the address with every bit past `prefix` zero.
struct Cidr {
    IpAddress network;
    int prefix = 0;  // 0..32 for IPv4, 0..128 for IPv6

    bool contains(const IpAddress& address) const;
    // The lowest and highest address of the range (for range-based filters).
    IpAddress first() const { return network; }
    IpAddress last() const;
    std::string to_string() const;  // "10.1.0.0/16"

    auto operator<=>(const Cidr&) const = default;
};

// "10.1.0.0/16", "2001:db8::/32"; a bare address is a single host (/32 or /128).
// Errc::invalid_argument with a message naming the input: not an address, prefix out of range,
// or host bits set ("10.1.2.3/16": did you mean 10.1.0.0/16?). A typo in a site range must not
// quietly become a different network.
[[nodiscard]] Result<Cidr> parse_cidr(std::string_view text);
// "CIDR[,CIDR...]"; spaces around items are ignored, empty items refused. At most
// kMaxSiteRanges items.
[[nodiscard]] Result<std::vector<Cidr>> parse_cidr_list(std::string_view text);

// The network of `address` with `prefix` bits kept.
Cidr network_of(const IpAddress& address, int prefix);

struct Site {
    std::string name;  // [A-Za-z0-9._-]{1,64}
    std::vector<Cidr> ranges;

    bool operator==(const Site&) const = default;
};

// "NAME=CIDR[,CIDR...]". Errc::invalid_argument.
[[nodiscard]] Result<Site> parse_site(std::string_view spec);
// The spec form again: "branch1=10.1.0.0/16,10.2.0.0/16".
std::string to_spec(const Site& site);
// Errc::invalid_argument unless [A-Za-z0-9._-]{1,64}.
[[nodiscard]] Result<void> validate_site_name(std::string_view name);

// The configured sites and the rule for everything else.
class SiteMap {
  public:
    SiteMap() = default;  // no configured site: every address is in its automatic site

    // Errc::invalid_argument for a repeated name, the same range in two sites, or more than
    // kMaxSites sites. Ranges may nest: the most specific (longest prefix) range decides.
    [[nodiscard]] static Result<SiteMap> make(std::vector<Site> sites);
    // make() of parse_site() of each spec.
    [[nodiscard]] static Result<SiteMap> parse(const std::vector<std::string>& specs);

    // The configured site whose most specific range holds `address`, else its automatic site.
    std::string classify(const IpAddress& address) const;
    // classify() of a textual address; an unparsable one is its own site "auto:?<text>" (never
    // equal to a real site), so a garbled address never joins anyone.
    std::string classify(std::string_view address) const;

    const std::vector<Site>& sites() const { return sites_; }
    bool empty() const { return sites_.empty(); }

  private:
    std::vector<Site> sites_;
};

// The network of `address` with `prefix` bits (clamped to the address's length), e.g. the /64
// an IPv6 host sits in.
Cidr network_of(const IpAddress& address, int prefix);

// "auto:10.9.8.0/24" for IPv4, "auto:2001:db8:1:2::/64" for IPv6.
std::string auto_site_name(const IpAddress& address);
bool is_auto_site(std::string_view name);

}  // namespace patchswarm::core
