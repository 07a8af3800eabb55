// libFuzzer target for io::swarm::inspect_torrent (libtorrent's bdecode and torrent_info under our
// load limits, then our own checks). Input: a .torrent file. libtorrent itself is Debian's
// uninstrumented build, so coverage guides the fuzzer through our code only; crashes and ASan
// reports inside libtorrent are still caught. Beyond "no crash": an accepted torrent has a v2
// info-hash, a one-component name, and safe, sorted, unique relative file paths (the manifest's
// rules), and a single-file torrent's one file is named after the torrent.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/manifest.hpp"
#include "fuzz/fuzz_support.hpp"
#include "io/swarm/torrent_file.hpp"

namespace patchswarm::fuzz {

bool torrent_one(const std::uint8_t* data, std::size_t size) {
    const std::vector<std::uint8_t> bytes(data, data + size);
    auto t = io::swarm::inspect_torrent(bytes);
    if (!t) {
        const Errc code = t.error().code;
        FUZZ_CHECK(code == Errc::malformed || code == Errc::too_large || code == Errc::unsafe_path);
        FUZZ_CHECK(!t.error().message.empty());
        return false;
    }
    FUZZ_CHECK(t->bytes == bytes);
    FUZZ_CHECK(is_lower_hex(t->infohash_v2, 64));
    FUZZ_CHECK(core::validate_relative_path(t->name).has_value());
    FUZZ_CHECK(t->name.find('/') == std::string::npos);
    FUZZ_CHECK(!t->files.empty());
    for (std::size_t i = 0; i < t->files.size(); ++i) {
        FUZZ_CHECK(core::validate_relative_path(t->files[i].path).has_value());
        if (i > 0) FUZZ_CHECK(t->files[i - 1].path < t->files[i].path);
    }
    if (t->single_file) FUZZ_CHECK(t->files.size() == 1 && t->files[0].path == t->name);
    return true;
}

}  // namespace patchswarm::fuzz

PATCHSWARM_FUZZ_ENTRY(torrent_one)
