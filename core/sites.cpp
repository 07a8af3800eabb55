#include "core/sites.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <set>

#include "base/text.hpp"
#include "core/ip_address.hpp"

namespace patchswarm::core {

namespace {

constexpr int kAutoPrefixV4 = 24;
constexpr int kAutoPrefixV6 = 64;

int max_prefix(const IpAddress& a) {
    return a.v6 ? 128 : 32;
}

// Keeps the first `prefix` bits of `a`, zeroing the rest.
IpAddress masked(IpAddress a, int prefix) {
    const int bits = max_prefix(a);
    for (int i = 0; i < bits / 8; ++i) {
        const int keep = std::clamp(prefix - 8 * i, 0, 8);
        const auto mask = static_cast<std::uint8_t>(keep == 0 ? 0 : (0xff << (8 - keep)) & 0xff);
        a.bytes[static_cast<std::size_t>(i)] &= mask;
    }
    return a;
}

}  // namespace

// ---- addresses -------------------------------------------------------------------------------

std::optional<IpAddress> parse_ip(std::string_view text) {
    // 45 characters is the longest IPv6 text form (INET6_ADDRSTRLEN less its NUL), the bound
    // this always had.
    constexpr std::size_t kMaxText = 45;
    if (text.empty() || text.size() > kMaxText) return std::nullopt;
    IpAddress a;
    if (const auto v4 = parse_ipv4(text)) {
        std::copy(v4->begin(), v4->end(), a.bytes.begin());
        return a;
    }
    const auto v6 = parse_ipv6(text);
    if (!v6) return std::nullopt;
    a.bytes = *v6;
    static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(a.bytes.data(), kMapped, sizeof kMapped) == 0) {
        std::memmove(a.bytes.data(), a.bytes.data() + 12, 4);
        std::fill(a.bytes.begin() + 4, a.bytes.end(), 0);
        return a;
    }
    a.v6 = true;
    return a;
}

std::string to_string(const IpAddress& a) {
    if (a.v6) return format_ipv6(a.bytes);
    return format_ipv4({a.bytes[0], a.bytes[1], a.bytes[2], a.bytes[3]});
}

// ---- CIDR ------------------------------------------------------------------------------------

bool Cidr::contains(const IpAddress& a) const {
    if (a.v6 != network.v6) return false;
    return masked(a, prefix) == network;
}

IpAddress Cidr::last() const {
    IpAddress a = network;
    const int bits = max_prefix(a);
    for (int i = 0; i < bits / 8; ++i) {
        const int keep = std::clamp(prefix - 8 * i, 0, 8);
        const auto host = static_cast<std::uint8_t>(keep == 8 ? 0 : 0xff >> keep);
        a.bytes[static_cast<std::size_t>(i)] |= host;
    }
    return a;
}

std::string Cidr::to_string() const {
    return core::to_string(network) + "/" + std::to_string(prefix);
}

Cidr network_of(const IpAddress& address, int prefix) {
    prefix = std::clamp(prefix, 0, max_prefix(address));
    return {masked(address, prefix), prefix};
}

Result<Cidr> parse_cidr(std::string_view text) {
    const std::string shown(text.substr(0, 80));
    const auto slash = text.find('/');
    const auto ip = parse_ip(text.substr(0, slash));
    if (!ip) return fail(Errc::invalid_argument, "not an IP address or CIDR: " + shown);
    int prefix = max_prefix(*ip);
    if (slash != std::string_view::npos) {
        const std::string_view p = text.substr(slash + 1);
        const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
        if (p.empty() || ec != std::errc{} || end != p.data() + p.size() || prefix < 0 ||
            prefix > max_prefix(*ip)) {
            return fail(Errc::invalid_argument,
                        "CIDR prefix must be 0.." + std::to_string(max_prefix(*ip)) + ": " + shown);
        }
    }
    const Cidr cidr = network_of(*ip, prefix);
    if (cidr.network != *ip) {
        return fail(Errc::invalid_argument, "CIDR " + shown + " has host bits set (did you mean " +
                                                cidr.to_string() + "?)");
    }
    return cidr;
}

Result<std::vector<Cidr>> parse_cidr_list(std::string_view text) {
    std::vector<Cidr> out;
    std::string_view rest = text;
    for (;;) {
        const auto comma = rest.find(',');
        const std::string_view item = trim(rest.substr(0, comma));
        if (item.empty()) return fail(Errc::invalid_argument, "empty item in address range list");
        if (out.size() >= kMaxSiteRanges) {
            return fail(Errc::invalid_argument,
                        "more than " + std::to_string(kMaxSiteRanges) + " address ranges");
        }
        auto cidr = parse_cidr(item);
        if (!cidr) return std::unexpected(cidr.error());
        out.push_back(*cidr);
        if (comma == std::string_view::npos) break;
        rest = rest.substr(comma + 1);
    }
    return out;
}

// ---- sites -----------------------------------------------------------------------------------

Result<void> validate_site_name(std::string_view name) {
    if (name.empty() || name.size() > kMaxSiteNameBytes) {
        return fail(Errc::invalid_argument, "site name must be 1-64 characters");
    }
    const bool ok = std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == '-';
    });
    if (!ok) {
        return fail(Errc::invalid_argument, "site name may hold only A-Z a-z 0-9 . _ -: " +
                                                std::string(name.substr(0, 80)));
    }
    return {};
}

Result<Site> parse_site(std::string_view spec) {
    const auto eq = spec.find('=');
    if (eq == std::string_view::npos) {
        return fail(Errc::invalid_argument,
                    "site must be NAME=CIDR[,CIDR...]: " + std::string(spec.substr(0, 80)));
    }
    Site site;
    site.name = std::string(trim(spec.substr(0, eq)));
    if (auto ok = validate_site_name(site.name); !ok) return std::unexpected(ok.error());
    auto ranges = parse_cidr_list(spec.substr(eq + 1));
    if (!ranges) {
        return fail(Errc::invalid_argument, "site " + site.name + ": " + ranges.error().message);
    }
    site.ranges = std::move(*ranges);
    return site;
}

std::string to_spec(const Site& site) {
    std::string out = site.name + "=";
    for (std::size_t i = 0; i < site.ranges.size(); ++i) {
        if (i) out += ',';
        out += site.ranges[i].to_string();
    }
    return out;
}

Result<SiteMap> SiteMap::make(std::vector<Site> sites) {
    if (sites.size() > kMaxSites) {
        return fail(Errc::invalid_argument,
                    "more than " + std::to_string(kMaxSites) + " sites configured");
    }
    std::set<std::string> names;
    std::set<Cidr> ranges;
    for (const auto& site : sites) {
        if (auto ok = validate_site_name(site.name); !ok) return std::unexpected(ok.error());
        if (!names.insert(site.name).second) {
            return fail(Errc::invalid_argument, "site " + site.name + " is configured twice");
        }
        if (site.ranges.empty()) {
            return fail(Errc::invalid_argument, "site " + site.name + " has no address range");
        }
        for (const auto& r : site.ranges) {
            if (!ranges.insert(r).second) {
                return fail(Errc::invalid_argument,
                            "address range " + r.to_string() + " is named by two sites");
            }
        }
    }
    SiteMap map;
    map.sites_ = std::move(sites);
    return map;
}

Result<SiteMap> SiteMap::parse(const std::vector<std::string>& specs) {
    std::vector<Site> sites;
    for (const auto& spec : specs) {
        auto site = parse_site(spec);
        if (!site) return std::unexpected(site.error());
        sites.push_back(std::move(*site));
    }
    return make(std::move(sites));
}

std::string SiteMap::classify(const IpAddress& address) const {
    const Site* best = nullptr;
    int best_prefix = -1;
    for (const auto& site : sites_) {
        for (const auto& r : site.ranges) {
            if (r.prefix > best_prefix && r.contains(address)) {
                best = &site;
                best_prefix = r.prefix;
            }
        }
    }
    return best ? best->name : auto_site_name(address);
}

std::string SiteMap::classify(std::string_view address) const {
    const auto ip = parse_ip(address);
    if (!ip) return std::string(kAutoSitePrefix) + "?" + std::string(address.substr(0, 64));
    return classify(*ip);
}

std::string auto_site_name(const IpAddress& address) {
    return std::string(kAutoSitePrefix) +
           network_of(address, address.v6 ? kAutoPrefixV6 : kAutoPrefixV4).to_string();
}

bool is_auto_site(std::string_view name) {
    return name.starts_with(kAutoSitePrefix);
}

}  // namespace patchswarm::core
