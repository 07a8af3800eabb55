// Writes the generated part of the seed corpora (signed envelopes, reports, torrents) into
// fuzz/corpus/. Run by hand when a format changes (fuzz/README.md); the output is committed, so
// neither the fuzzers nor the replay test need this program. Signs with the throwaway keys of
// fuzz_support.hpp only.
//
// Usage: fuzz_make_seeds <repository root>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <libtorrent/create_torrent.hpp>
#include <libtorrent/file_storage.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/envelope.hpp"
#include "core/root.hpp"
#include "crypto/crypto.hpp"
#include "fuzz/fuzz_support.hpp"
#include "io/swarm/torrent_file.hpp"
#include "seeder/report.hpp"

namespace fs = std::filesystem;
namespace crypto = patchswarm::crypto;
namespace core = patchswarm::core;
namespace fz = patchswarm::fuzz;
using Json = nlohmann::ordered_json;

namespace {

std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path.string());
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const fs::path& path, std::string_view bytes) {
    fs::create_directories(path.parent_path());
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) throw std::runtime_error("cannot write " + path.string());
}

std::string envelope(std::string_view type, std::string_view payload,
                     std::vector<crypto::KeyPair> keys) {
    return core::serialize_envelope(core::sign_envelope(type, crypto::as_bytes(payload), keys));
}

std::string report_payload(bool with_releases) {
    const crypto::PublicKey& key = fz::device_key().public_key;
    Json j;
    j["format"] = 1;
    j["device_id"] = patchswarm::seeder::device_id_for(key);
    j["device_key"] = crypto::to_hex(key);
    j["hostname"] = "ws-0042.branch1";
    j["sent_at"] = 1763800100;
    j["counter"] = 42;
    j["boot_id"] = "8c3f2a3e-1b7d-4f55-9a0e-2d1f0c9b7e61";
    j["releases"] = Json::array();
    if (with_releases) {
        Json a;
        a["id"] = "MS08-067";
        a["manifest_sha256"] = std::string(64, 'a');
        a["state"] = "downloading";
        a["entered_at"] = 1763800000;
        a["progress"] = 0.42;
        a["bytes_from_peers"] = 123;
        a["bytes_from_seeder"] = 456;
        a["bytes_from_lan"] = 100;
        a["bytes_from_wan"] = 479;
        a["attempts"] = 0;
        a["reason"] = "";
        Json b;
        b["id"] = "MS10-001";
        b["manifest_sha256"] = "";
        b["state"] = "failed";
        b["entered_at"] = 1763790000;
        b["progress"] = 1;
        b["bytes_from_peers"] = 0;
        b["bytes_from_seeder"] = 9223372036854775807ull;
        b["attempts"] = 3;
        b["reason"] = "install exited with status 1\nsee the log";
        b["note"] = "unknown fields are ignored";
        j["releases"].push_back(a);
        j["releases"].push_back(b);
    }
    return j.dump();
}

std::string bencoded(const lt::create_torrent& ct) {
    std::string out;
    lt::bencode(std::back_inserter(out), ct.generate());
    return out;
}

// A torrent of `payload` (under `parent`) built by libtorrent with the given flags.
std::string make_torrent(const fs::path& parent, const std::string& payload,
                         lt::create_flags_t flags) {
    lt::file_storage files;
    lt::add_files(files, (parent / payload).string());
    lt::create_torrent ct(files, 0, flags);
    ct.set_creation_date(0);
    lt::set_piece_hashes(ct, parent.string());
    return bencoded(ct);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s <repository root>\n", argv[0]);
        return 2;
    }
    try {
        crypto::init();
        const fs::path root = argv[1];
        const fs::path data = root / "tests" / "data";
        const fs::path corpus = root / "fuzz" / "corpus";
        const auto& release = fz::release_key();
        const auto& feed = fz::feed_key();
        const auto& device = fz::device_key();

        // Envelopes of every document type, as an endpoint or the seeder receives them.
        const std::string manifest = read_file(data / "manifests" / "valid_manifest.json");
        const std::string rollout = read_file(data / "manifests" / "valid_rollout.json");
        const std::string feed_doc = read_file(data / "feeds" / "valid_feed.json");
        // A root naming the throwaway keys: device key as root key, release and feed keys.
        core::RootDocument root_document;
        root_document.expires = 1795336000;
        const crypto::PublicKey root_keys[] = {device.public_key};
        const crypto::PublicKey release_keys[] = {release.public_key};
        const crypto::PublicKey feed_keys[] = {feed.public_key};
        root_document.root = core::add_role_keys(root_document, root_keys, 1);
        root_document.release = core::add_role_keys(root_document, release_keys, 1);
        root_document.feed = core::add_role_keys(root_document, feed_keys, 1);
        const std::string root_doc = core::serialize_root(root_document);
        write_file(corpus / "feed" / "generated_root.json", root_doc);

        const fs::path env = corpus / "envelope";
        write_file(env / "manifest_signed_by_release_key.json",
                   envelope(core::payload_type::manifest, manifest, {release}));
        write_file(env / "rollout_manifest_signed_by_release_key.json",
                   envelope(core::payload_type::manifest, rollout, {release}));
        write_file(env / "manifest_signed_by_release_and_feed_keys.json",
                   envelope(core::payload_type::manifest, manifest, {release, feed}));
        write_file(env / "feed_signed_by_feed_key.json",
                   envelope(core::payload_type::feed, feed_doc, {feed}));
        write_file(env / "root_signed_by_root_key.json",
                   envelope(core::payload_type::root, root_doc, {device}));
        write_file(env / "report_signed_by_device_key.json",
                   envelope(core::payload_type::report, report_payload(true), {device}));
        write_file(env / "unsigned.json", envelope(core::payload_type::root, "{}", {}));

        // Reports: "P" + payload (the harness signs it), and whole request bodies.
        const fs::path rep = corpus / "report";
        write_file(rep / "payload_with_releases.txt", "P" + report_payload(true));
        write_file(rep / "payload_without_releases.txt", "P" + report_payload(false));
        write_file(rep / "envelope_with_releases.json",
                   envelope(core::payload_type::report, report_payload(true), {device}));
        write_file(rep / "envelope_signed_by_other_key.json",
                   envelope(core::payload_type::report, report_payload(false), {release}));

        // Torrents: v2-only as publish makes them (single file, folder), hybrid, and v1-only.
        const fs::path tmp = fs::temp_directory_path() / "patchswarm-fuzz-seeds";
        fs::remove_all(tmp);
        write_file(tmp / "KB958644.msu", "patch bytes\n");
        write_file(tmp / "KB958644" / "install.sh", "#!/bin/sh\nexit 0\n");
        write_file(tmp / "KB958644" / "payload" / "data.bin", std::string(40000, 'x'));
        write_file(tmp / "KB958644" / "verify.sh", "#!/bin/sh\nexit 0\n");
        const fs::path tor = corpus / "torrent";
        for (const char* name : {"KB958644.msu", "KB958644"}) {
            auto t = patchswarm::io::swarm::create_torrent(tmp / name);
            if (!t) throw std::runtime_error("create_torrent: " + t.error().message);
            write_file(tor / (std::string("v2_") + name + ".torrent"),
                       std::string(t->bytes.begin(), t->bytes.end()));
        }
        write_file(tor / "hybrid_KB958644.torrent", make_torrent(tmp, "KB958644", {}));
        write_file(tor / "v1_only_KB958644.torrent",
                   make_torrent(tmp, "KB958644", lt::create_torrent::v1_only));
        fs::remove_all(tmp);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fuzz_make_seeds: %s\n", e.what());
        return 1;
    }
}
