#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>

#include "core/manifest.hpp"

namespace fs = std::filesystem;
using namespace patchswarm;
using namespace patchswarm::core;

namespace {

const fs::path kDataDir = fs::path(PATCHSWARM_TEST_DATA) / "manifests";

std::string read_data(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in.good());
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string hash_of(char c) {
    return std::string(64, c);
}

Manifest sample_manifest() {
    Manifest m;
    m.repository = "repo";
    m.id = "MS08-067";
    m.sequence = 3;
    m.created = 1763800000;
    m.expires = 1795336000;
    m.severity = Severity::emergency;
    m.name = "KB958644";
    m.files = {{"install.sh", 120, hash_of('a')},
               {"payload/data \"quoted\" \xc3\xa9.bin", 1ull << 33, hash_of('b')},
               {"verify.sh", 0, hash_of('c')}};
    m.infohash_v2 = hash_of('d');
    m.install = {{"./install.sh", "--quiet", "--log=C:\\tmp\\x"}, 1800};
    m.verify = CommandLine{{"./verify.sh"}, 300};
    m.reboot = RebootPolicy::if_needed;
    return m;
}

// A syntactically valid manifest with `count` files whose paths sort in numeric order.
std::string manifest_with_files(std::size_t count) {
    Manifest m = sample_manifest();
    m.files.clear();
    for (std::size_t i = 0; i < count; ++i) {
        const std::string number = std::to_string(i);
        m.files.push_back({"f" + std::string(5 - number.size(), '0') + number, 1, hash_of('e')});
    }
    return serialize_manifest(m);
}

// A rollout that uses every feature, including values that need decimals.
Rollout sample_rollout() {
    Rollout r;
    Ring canary;
    canary.name = "canary";
    canary.groups = {"it-staff"};
    canary.devices = {"0123456789abcdef0123456789abcdef"};
    canary.fleet_bp = 100;  // 1 %
    canary.success_bp = 9500;
    canary.soak_s = 3600;
    canary.max_failure_bp = 2000;
    Ring early;
    early.name = "early";
    early.fleet_bp = 1050;  // 10.5 %
    early.success_bp = 1;   // 0.0001
    early.soak_s = 0;
    early.max_failure_bp = 0;
    Ring finance;
    finance.name = "finance";
    finance.groups = {"finance", "finance-eu"};
    r.rings = {canary, early, finance};
    r.deadline = 1764400000;
    r.windows = {{"finance", 0x1f, 22 * 60, 4 * 60, "America/New_York"},
                 {"finance-eu", 0x60, 0, 24 * 60, "Europe/Berlin"},
                 {"*", 0x40, 2 * 60, 4 * 60, "Asia/Kolkata"}};
    return r;
}

// The bytes serialize_manifest produced for sample_manifest() before manifests had a rollout
// section: signatures over manifests without one must keep verifying.
constexpr std::string_view kSampleBytesBeforeRollout =
    R"({"format":1,"repository":"repo","id":"MS08-067","sequence":3,"created":1763800000,)"
    R"("expires":1795336000,"severity":"emergency","name":"KB958644","files":[{"path":)"
    R"("install.sh","size":120,"sha256":)"
    R"("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},{"path":)"
    R"("payload/data \"quoted\" )"
    "\xc3\xa9"
    R"(.bin","size":8589934592,"sha256":)"
    R"("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"},{"path":"verify.sh",)"
    R"("size":0,"sha256":"cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"}],)"
    R"("infohash_v2":"dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd",)"
    R"("install":{"argv":["./install.sh","--quiet","--log=C:\\tmp\\x"],"timeout_s":1800},)"
    R"("verify":{"argv":["./verify.sh"],"timeout_s":300},"reboot":"if_needed"})";

}  // namespace

TEST_CASE("a manifest survives serialise and parse unchanged", "[core]") {
    const Manifest m = sample_manifest();
    const std::string text = serialize_manifest(m);
    auto parsed = parse_manifest(text);
    REQUIRE(parsed.has_value());
    CHECK(*parsed == m);
    // Canonical: the bytes of a re-serialised manifest are identical, so signatures hold.
    CHECK(serialize_manifest(*parsed) == text);

    Manifest no_verify = m;
    no_verify.verify.reset();
    auto parsed_no_verify = parse_manifest(serialize_manifest(no_verify));
    REQUIRE(parsed_no_verify.has_value());
    CHECK(*parsed_no_verify == no_verify);
    CHECK_FALSE(parsed_no_verify->verify.has_value());
}

TEST_CASE("serialised manifests are compact with a fixed key order", "[core]") {
    const std::string text = serialize_manifest(sample_manifest());
    CHECK(text.rfind(R"({"format":1,"repository":"repo","id":"MS08-067","sequence":3,)", 0) == 0);
    CHECK(text.find('\n') == std::string::npos);
    CHECK(text.find(R"("install":{"argv":["./install.sh","--quiet",)") != std::string::npos);
    CHECK(text.ends_with(R"(,"reboot":"if_needed"})"));
}

TEST_CASE("the valid manifest file parses with every field", "[core]") {
    auto m = parse_manifest(read_data(kDataDir / "valid_manifest.json"));
    REQUIRE(m.has_value());
    CHECK(m->id == "MS08-067");
    CHECK(m->severity == Severity::emergency);
    CHECK(m->reboot == RebootPolicy::required);
    REQUIRE(m->files.size() == 3);
    CHECK(m->files[1].path == "payload/data.bin");
    CHECK(m->total_size() == 120 + 4096 + 80);
    CHECK(m->install.argv == std::vector<std::string>{"./install.sh", "--quiet"});
    REQUIRE(m->verify.has_value());
    CHECK(m->verify->timeout_s == 300);
}

TEST_CASE("malicious manifests are refused with the right error", "[core]") {
    struct Row {
        const char* file;
        Errc code;
        const char* field;  // the error message must name it
    };
    const Row rows[] = {
        {"dotdot_path.json", Errc::unsafe_path, "manifest.files[0].path"},
        {"dotdot_inner_path.json", Errc::unsafe_path, "manifest.files[0].path"},
        {"absolute_path.json", Errc::unsafe_path, "manifest.files[0].path"},
        {"backslash_path.json", Errc::unsafe_path, "manifest.files[0].path"},
        {"nul_in_path.json", Errc::unsafe_path, "manifest.files[0].path"},
        {"control_char_in_path.json", Errc::unsafe_path, "manifest.files[0].path"},
        {"empty_component.json", Errc::unsafe_path, "manifest.files[0].path"},
        {"trailing_slash_path.json", Errc::unsafe_path, "manifest.files[0].path"},
        {"dot_component.json", Errc::unsafe_path, "manifest.files[0].path"},
        {"empty_path.json", Errc::unsafe_path, "manifest.files[0].path"},
        {"path_too_deep.json", Errc::too_large, "manifest.files[0].path"},
        {"path_component_too_long.json", Errc::too_large, "manifest.files[2].path"},
        {"path_too_long.json", Errc::too_large, "manifest.files[2].path"},
        {"file_and_folder_same_name.json", Errc::unsafe_path, "manifest.files[1].path"},
        {"duplicate_path.json", Errc::malformed, "manifest.files[1].path"},
        {"unsorted_paths.json", Errc::malformed, "manifest.files[1].path"},
        {"empty_files.json", Errc::malformed, "manifest.files"},
        {"oversize_id.json", Errc::too_large, "manifest.id"},
        {"dotdot_id.json", Errc::unsafe_path, "manifest.id"},
        {"slash_in_id.json", Errc::malformed, "manifest.id"},
        {"empty_id.json", Errc::malformed, "manifest.id"},
        {"bad_repository_name.json", Errc::malformed, "manifest.repository"},
        {"name_with_slash.json", Errc::unsafe_path, "manifest.name"},
        {"bad_infohash_length.json", Errc::malformed, "manifest.infohash_v2"},
        {"uppercase_infohash.json", Errc::malformed, "manifest.infohash_v2"},
        {"bad_sha256_hex.json", Errc::malformed, "manifest.files[0].sha256"},
        {"negative_size.json", Errc::malformed, "manifest.files[0].size"},
        {"fractional_size.json", Errc::malformed, "manifest.files[0].size"},
        {"size_as_string.json", Errc::malformed, "manifest.files[0].size"},
        {"size_over_uint64.json", Errc::malformed, "manifest.files[0].size"},
        {"file_too_large.json", Errc::too_large, "manifest.files[0].size"},
        {"total_too_large.json", Errc::too_large, "manifest.files"},
        {"empty_argv.json", Errc::malformed, "manifest.install.argv"},
        {"empty_argv0.json", Errc::malformed, "manifest.install.argv[0]"},
        {"nul_in_argv.json", Errc::malformed, "manifest.install.argv[0]"},
        {"argv_not_string.json", Errc::malformed, "manifest.install.argv[1]"},
        {"too_many_args.json", Errc::too_large, "manifest.install.argv"},
        {"arg_too_long.json", Errc::too_large, "manifest.install.argv[1]"},
        {"zero_timeout.json", Errc::malformed, "manifest.install.timeout_s"},
        {"timeout_over_24h.json", Errc::malformed, "manifest.verify.timeout_s"},
        {"negative_timeout.json", Errc::malformed, "manifest.install.timeout_s"},
        {"unknown_format.json", Errc::malformed, "manifest.format"},
        {"format_as_string.json", Errc::malformed, "manifest.format"},
        {"missing_id.json", Errc::malformed, "manifest.id"},
        {"missing_files.json", Errc::malformed, "manifest.files"},
        {"missing_install.json", Errc::malformed, "manifest.install"},
        {"verify_null.json", Errc::malformed, "manifest.verify"},
        {"unknown_field.json", Errc::malformed, "manifest.run_as"},
        {"unknown_command_field.json", Errc::malformed, "manifest.install.env"},
        {"unknown_severity.json", Errc::malformed, "manifest.severity"},
        {"unknown_reboot.json", Errc::malformed, "manifest.reboot"},
        {"severity_as_number.json", Errc::malformed, "manifest.severity"},
        {"expires_before_created.json", Errc::malformed, "manifest.expires"},
        {"created_over_int64.json", Errc::malformed, "manifest.created"},
        {"duplicate_key.json", Errc::malformed, "\"id\""},
        {"duplicate_nested_key.json", Errc::malformed, "\"path\""},
        {"not_json.json", Errc::malformed, "manifest"},
        {"empty_document.json", Errc::malformed, "manifest"},
        {"not_object.json", Errc::malformed, "manifest"},
        {"truncated.json", Errc::malformed, "manifest"},
        {"trailing_garbage.json", Errc::malformed, "manifest"},
        {"comment.json", Errc::malformed, "manifest"},
        {"invalid_utf8.json", Errc::malformed, "manifest"},
        {"rollout_null.json", Errc::malformed, "manifest.rollout"},
        {"rollout_as_array.json", Errc::malformed, "manifest.rollout"},
        {"rollout_unknown_field.json", Errc::malformed, "manifest.rollout.canary_pct"},
        {"rollout_missing_rings.json", Errc::malformed, "manifest.rollout.rings"},
        {"rollout_missing_windows.json", Errc::malformed, "manifest.rollout.windows"},
        {"rollout_too_many_rings.json", Errc::too_large, "manifest.rollout.rings"},
        {"rollout_duplicate_ring_name.json", Errc::malformed, "manifest.rollout.rings[1].name"},
        {"rollout_ring_unknown_field.json", Errc::malformed, "manifest.rollout.rings[0].schedule"},
        {"rollout_ring_selects_nothing.json", Errc::malformed, "manifest.rollout.rings[0]"},
        {"rollout_ring_empty_groups.json", Errc::malformed, "manifest.rollout.rings[0].groups"},
        {"rollout_ring_name_reserved.json", Errc::malformed, "manifest.rollout.rings[0].name"},
        {"rollout_ring_group_too_long.json", Errc::too_large,
         "manifest.rollout.rings[0].groups[0]"},
        {"rollout_ring_group_with_slash.json", Errc::malformed,
         "manifest.rollout.rings[0].groups[0]"},
        {"rollout_ring_duplicate_group.json", Errc::malformed,
         "manifest.rollout.rings[0].groups[1]"},
        {"rollout_ring_too_many_groups.json", Errc::too_large, "manifest.rollout.rings[0].groups"},
        {"rollout_device_id_uppercase.json", Errc::malformed,
         "manifest.rollout.rings[0].devices[0]"},
        {"rollout_device_id_short.json", Errc::malformed, "manifest.rollout.rings[0].devices[0]"},
        {"rollout_duplicate_device.json", Errc::malformed, "manifest.rollout.rings[0].devices[1]"},
        {"rollout_too_many_devices.json", Errc::too_large, "manifest.rollout.rings[0].devices"},
        {"rollout_percent_over_100.json", Errc::malformed, "manifest.rollout.rings[0].percent"},
        {"rollout_percent_zero.json", Errc::malformed, "manifest.rollout.rings[0].percent"},
        {"rollout_percent_negative.json", Errc::malformed, "manifest.rollout.rings[0].percent"},
        {"rollout_percent_too_precise.json", Errc::malformed, "manifest.rollout.rings[0].percent"},
        {"rollout_percent_as_string.json", Errc::malformed, "manifest.rollout.rings[0].percent"},
        {"rollout_threshold_over_one.json", Errc::malformed,
         "manifest.rollout.rings[0].success_threshold"},
        {"rollout_threshold_as_percent.json", Errc::malformed,
         "manifest.rollout.rings[0].success_threshold"},
        {"rollout_threshold_as_string.json", Errc::malformed,
         "manifest.rollout.rings[0].success_threshold"},
        {"rollout_threshold_missing.json", Errc::malformed,
         "manifest.rollout.rings[0].success_threshold"},
        {"rollout_threshold_huge_exponent.json", Errc::malformed, "manifest"},
        {"rollout_failure_rate_negative.json", Errc::malformed,
         "manifest.rollout.rings[0].max_failure_rate"},
        {"rollout_failure_rate_too_precise.json", Errc::malformed,
         "manifest.rollout.rings[0].max_failure_rate"},
        {"rollout_soak_negative.json", Errc::malformed, "manifest.rollout.rings[0].soak_s"},
        {"rollout_soak_over_30_days.json", Errc::malformed, "manifest.rollout.rings[0].soak_s"},
        {"rollout_soak_fractional.json", Errc::malformed, "manifest.rollout.rings[0].soak_s"},
        {"rollout_deadline_before_created.json", Errc::malformed, "manifest.rollout.deadline"},
        {"rollout_deadline_after_expires.json", Errc::malformed, "manifest.rollout.deadline"},
        {"rollout_deadline_as_string.json", Errc::malformed, "manifest.rollout.deadline"},
        {"rollout_deadline_null.json", Errc::malformed, "manifest.rollout.deadline"},
        {"rollout_too_many_windows.json", Errc::too_large, "manifest.rollout.windows"},
        {"rollout_window_unknown_field.json", Errc::malformed, "manifest.rollout.windows[0].weeks"},
        {"rollout_window_hour_25.json", Errc::malformed, "manifest.rollout.windows[0].start"},
        {"rollout_window_single_digit_hour.json", Errc::malformed,
         "manifest.rollout.windows[0].start"},
        {"rollout_window_minute_60.json", Errc::malformed, "manifest.rollout.windows[0].start"},
        {"rollout_window_start_2400.json", Errc::malformed, "manifest.rollout.windows[0].start"},
        {"rollout_window_end_0000.json", Errc::malformed, "manifest.rollout.windows[0].end"},
        {"rollout_window_end_equals_start.json", Errc::malformed,
         "manifest.rollout.windows[0].end"},
        {"rollout_window_unknown_day.json", Errc::malformed, "manifest.rollout.windows[0].days[0]"},
        {"rollout_window_duplicate_day.json", Errc::malformed,
         "manifest.rollout.windows[0].days[1]"},
        {"rollout_window_days_unsorted.json", Errc::malformed,
         "manifest.rollout.windows[0].days[1]"},
        {"rollout_window_no_days.json", Errc::malformed, "manifest.rollout.windows[0].days"},
        {"rollout_window_too_many_days.json", Errc::too_large, "manifest.rollout.windows[0].days"},
        {"rollout_window_zone_dotdot.json", Errc::malformed, "manifest.rollout.windows[0].tz"},
        {"rollout_window_zone_absolute.json", Errc::malformed, "manifest.rollout.windows[0].tz"},
        {"rollout_window_zone_too_long.json", Errc::too_large, "manifest.rollout.windows[0].tz"},
        {"rollout_window_zone_empty.json", Errc::malformed, "manifest.rollout.windows[0].tz"},
        {"rollout_window_zone_nul.json", Errc::malformed, "manifest.rollout.windows[0].tz"},
        {"rollout_window_missing_zone.json", Errc::malformed, "manifest.rollout.windows[0].tz"},
        {"rollout_window_group_with_slash.json", Errc::malformed,
         "manifest.rollout.windows[0].group"},
    };

    std::set<std::string> covered{"valid_manifest.json", "valid_rollout.json"};
    for (const auto& row : rows) {
        INFO(row.file);
        covered.insert(row.file);
        auto r = parse_manifest(read_data(kDataDir / row.file));
        REQUIRE_FALSE(r.has_value());
        INFO(r.error().message);
        CHECK(r.error().code == row.code);
        CHECK(r.error().message.find(row.field) != std::string::npos);
    }
    // Every attack file in the folder has a row: a new file cannot be silently skipped. The
    // windows_*.json files have theirs in the next test.
    for (const auto& entry : fs::directory_iterator(kDataDir)) {
        INFO(entry.path().filename());
        const std::string file = entry.path().filename().string();
        CHECK((covered.contains(file) || file.starts_with("windows_")));
    }
}

TEST_CASE("Windows path attacks are refused on every platform, naming the rule", "[core]") {
    struct Row {
        const char* file;
        const char* field;  // the error message must name the field ...
        const char* rule;   // ... and the rule
    };
    const Row rows[] = {
        {"windows_reserved_con.json", "manifest.files[0].path", "reserved device name"},
        {"windows_reserved_nul_with_extension.json", "manifest.files[0].path",
         "\"nul.txt\" is a reserved device name"},
        {"windows_reserved_com1_lowercase.json", "manifest.files[0].path", "reserved device name"},
        {"windows_reserved_lpt9_as_folder.json", "manifest.files[0].path",
         "\"LPT9\" is a reserved device name"},
        {"windows_reserved_aux_space_before_extension.json", "manifest.files[0].path",
         "reserved device name"},
        {"windows_reserved_com_superscript.json", "manifest.files[0].path", "reserved device name"},
        {"windows_reserved_conout.json", "manifest.files[0].path", "reserved device name"},
        {"windows_alternate_data_stream.json", "manifest.files[0].path",
         "NTFS alternate data stream"},
        {"windows_drive_letter.json", "manifest.files[0].path", "drive letter \"C:\""},
        {"windows_drive_relative.json", "manifest.files[0].path", "drive letter"},
        {"windows_unc_path.json", "manifest.files[0].path", "UNC path"},
        {"windows_unc_forward_slashes.json", "manifest.files[0].path", "UNC path"},
        {"windows_trailing_dot.json", "manifest.files[0].path", "ends with a dot or space"},
        {"windows_trailing_space.json", "manifest.files[0].path",
         "\"payload \" ends with a dot or space"},
        {"windows_case_collision.json", "manifest.files[1].path",
         "\"install.cmd\" and \"Install.cmd\" (manifest.files[0]) differ only in case"},
        {"windows_case_collision_folder.json", "manifest.files[1].path",
         "\"payload\" and \"Payload\" (manifest.files[0]) differ only in case"},
        {"windows_case_collision_latin1.json", "manifest.files[1].path", "differ only in case"},
        {"windows_reserved_name.json", "manifest.name", "reserved device name"},
        {"windows_reserved_id.json", "manifest.id", "\"com7\" is a reserved device name"},
        {"windows_id_trailing_dot.json", "manifest.id", "ends with a dot"},
    };
    std::set<std::string> covered;
    for (const auto& row : rows) {
        INFO(row.file);
        covered.insert(row.file);
        auto r = parse_manifest(read_data(kDataDir / row.file));
        REQUIRE_FALSE(r.has_value());
        INFO(r.error().message);
        CHECK(r.error().code == Errc::unsafe_path);
        CHECK(r.error().message.find(row.field) != std::string::npos);
        CHECK(r.error().message.find(row.rule) != std::string::npos);
    }
    for (const auto& entry : fs::directory_iterator(kDataDir)) {
        const std::string file = entry.path().filename().string();
        INFO(file);
        if (file.starts_with("windows_")) CHECK(covered.contains(file));
    }
}

TEST_CASE("a manifest may list kMaxFiles files but not one more", "[core]") {
    const std::string at_bound = manifest_with_files(kMaxFiles);
    // The count bound must trip on its own, not the byte bound.
    const std::string over = manifest_with_files(kMaxFiles + 1);
    REQUIRE(over.size() <= kMaxManifestBytes);

    CHECK(parse_manifest(at_bound).has_value());
    auto r = parse_manifest(over);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Errc::too_large);
    CHECK(r.error().message.find("manifest.files") != std::string::npos);
}

TEST_CASE("input over kMaxManifestBytes is refused before it is parsed", "[core]") {
    // Not JSON at all: were it parsed, the error would be malformed, not too_large.
    const std::string huge(kMaxManifestBytes + 1, '[');
    auto r = parse_manifest(huge);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Errc::too_large);
}

TEST_CASE("deeply nested JSON is refused without building it", "[core]") {
    std::string text = serialize_manifest(sample_manifest());
    text.pop_back();
    text += R"(,"x":)" + std::string(100'000, '[') + std::string(100'000, ']') + "}";
    auto r = parse_manifest(text);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Errc::malformed);
    CHECK(r.error().message.find("nested") != std::string::npos);
}

TEST_CASE("validate_relative_path accepts plain relative paths and refuses escapes", "[core]") {
    for (std::string_view ok :
         {"a", "a/b/c", "a..b", "..a", "a/.hidden", "dir.d/x-y_z.tar.gz",
          "\xe6\x97\xa5\xe6\x9c\xac/\xe8\xaa\x9e", "a/CON1", "CONSOLE.txt", "COM10", "LPT", "nul_x",
          "x.NUL", " leading space", ".a", "a.b/c"}) {
        INFO(ok);
        CHECK(validate_relative_path(ok).has_value());
    }
    struct Row {
        std::string path;
        Errc code;
    };
    const Row rows[] = {
        {"", Errc::unsafe_path},
        {"/a", Errc::unsafe_path},
        {"a/", Errc::unsafe_path},
        {"a//b", Errc::unsafe_path},
        {".", Errc::unsafe_path},
        {"..", Errc::unsafe_path},
        {"a/./b", Errc::unsafe_path},
        {"a/../../b", Errc::unsafe_path},
        {"a\\b", Errc::unsafe_path},
        {std::string("a\0b", 3), Errc::unsafe_path},
        {"a\nb", Errc::unsafe_path},
        {"a\x7f", Errc::unsafe_path},
        {"C:", Errc::unsafe_path},
        {"c:/x", Errc::unsafe_path},
        {"a/b:c", Errc::unsafe_path},
        {"a/con", Errc::unsafe_path},
        {"a/Con.tar.gz", Errc::unsafe_path},
        {"prn", Errc::unsafe_path},
        {"Lpt1.txt", Errc::unsafe_path},
        {"COM0", Errc::unsafe_path},
        {"conin$", Errc::unsafe_path},
        {"a./b", Errc::unsafe_path},
        {"a/b ", Errc::unsafe_path},
        {"//host/share", Errc::unsafe_path},
        {"\\\\host\\share", Errc::unsafe_path},
        {std::string(kMaxPathComponentBytes + 1, 'x'), Errc::too_large},
        {std::string(kMaxPathBytes + 1, 'x'), Errc::too_large},
    };
    for (const auto& row : rows) {
        INFO(row.path);
        auto r = validate_relative_path(row.path);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == row.code);
    }

    std::string deep = "d";
    for (std::size_t i = 1; i < kMaxPathDepth; ++i) deep += "/d";
    CHECK(validate_relative_path(deep).has_value());
    CHECK(validate_relative_path(deep + "/d").error().code == Errc::too_large);
    CHECK(validate_relative_path(std::string(kMaxPathComponentBytes, 'x')).has_value());
}

TEST_CASE("validate_release_id accepts [A-Za-z0-9._-]{1,64} except . and ..", "[core]") {
    for (std::string_view ok : {"MS08-067", "a", "KB958644.v2_final", "...", "-"}) {
        INFO(ok);
        CHECK(validate_release_id(ok).has_value());
    }
    CHECK(validate_release_id(std::string(kMaxIdBytes, 'A')).has_value());
    CHECK(validate_release_id(std::string(kMaxIdBytes + 1, 'A')).error().code == Errc::too_large);
    CHECK(validate_release_id(".").error().code == Errc::unsafe_path);
    CHECK(validate_release_id("..").error().code == Errc::unsafe_path);
    for (std::string_view bad : {"", "a/b", "a b", "a\\b", "\xc3\xa9", "id\n"}) {
        INFO(bad);
        CHECK(validate_release_id(bad).error().code == Errc::malformed);
    }
}

TEST_CASE("validate_manifest refuses a model a publisher built wrongly", "[core]") {
    CHECK(validate_manifest(sample_manifest()).has_value());

    Manifest unsorted = sample_manifest();
    std::swap(unsorted.files[0], unsorted.files[2]);
    CHECK(validate_manifest(unsorted).error().code == Errc::malformed);

    // The id is a folder on Windows endpoints too; feeds may still list such ids (test_feed).
    for (std::string bad : {"CON", "nul.x", "Com1", "LPT9.log", "a.", "..."}) {
        INFO(bad);
        Manifest m = sample_manifest();
        m.id = bad;
        CHECK(validate_manifest(m).error().code == Errc::unsafe_path);
    }

    Manifest no_timeout = sample_manifest();
    no_timeout.install.timeout_s = 0;
    CHECK(validate_manifest(no_timeout).error().code == Errc::malformed);

    Manifest long_timeout = sample_manifest();
    long_timeout.verify->timeout_s = kMaxTimeoutS + 1;
    CHECK(validate_manifest(long_timeout).error().code == Errc::malformed);
    long_timeout.verify->timeout_s = kMaxTimeoutS;
    CHECK(validate_manifest(long_timeout).has_value());
}

TEST_CASE("a manifest is fresh until its expiry second", "[core]") {
    const Manifest m = sample_manifest();
    CHECK(check_manifest_fresh(m, m.created).has_value());
    CHECK(check_manifest_fresh(m, m.expires - 1).has_value());
    auto at_expiry = check_manifest_fresh(m, m.expires);
    REQUIRE_FALSE(at_expiry.has_value());
    CHECK(at_expiry.error().code == Errc::expired);
    CHECK(check_manifest_fresh(m, m.expires + 86400).error().code == Errc::expired);
}

TEST_CASE("severity and reboot policy names round-trip", "[core]") {
    for (auto s : {Severity::low, Severity::normal, Severity::important, Severity::critical,
                   Severity::emergency}) {
        CHECK(parse_severity(to_string(s)) == s);
    }
    for (auto p : {RebootPolicy::none, RebootPolicy::required, RebootPolicy::if_needed}) {
        CHECK(parse_reboot_policy(to_string(p)) == p);
    }
    CHECK_FALSE(parse_severity("Emergency").has_value());
    CHECK_FALSE(parse_reboot_policy("").has_value());
}

TEST_CASE("total_size saturates instead of wrapping", "[core]") {
    Manifest m = sample_manifest();
    m.files = {{"a", ~0ull, hash_of('a')}, {"b", 5, hash_of('b')}};
    CHECK(m.total_size() == ~0ull);
}

TEST_CASE("a manifest without a rollout serialises exactly as before rollouts existed", "[core]") {
    const std::string text = serialize_manifest(sample_manifest());
    CHECK(text == kSampleBytesBeforeRollout);
    auto parsed = parse_manifest(text);
    REQUIRE(parsed.has_value());
    CHECK_FALSE(parsed->rollout.has_value());
}

TEST_CASE("a manifest with a rollout survives serialise and parse unchanged", "[core]") {
    Manifest m = sample_manifest();
    m.rollout = sample_rollout();
    const std::string text = serialize_manifest(m);
    auto parsed = parse_manifest(text);
    REQUIRE(parsed.has_value());
    CHECK(*parsed == m);
    CHECK(serialize_manifest(*parsed) == text);
    // The rollout comes last, after every field a manifest had before.
    CHECK(text.starts_with(
        kSampleBytesBeforeRollout.substr(0, kSampleBytesBeforeRollout.size() - 1)));
    CHECK(text.find(R"("reboot":"if_needed","rollout":{"rings":[{"name":"canary",)") !=
          std::string::npos);
    CHECK(text.find(R"("percent":1,"success_threshold":0.95,"soak_s":3600,)"
                    R"("max_failure_rate":0.2})") != std::string::npos);
    CHECK(text.find(R"({"name":"early","percent":10.5,"success_threshold":0.0001,"soak_s":0,)"
                    R"("max_failure_rate":0})") != std::string::npos);
    CHECK(text.find(R"({"name":"finance","groups":["finance","finance-eu"],)"
                    R"("success_threshold":1,"soak_s":0,"max_failure_rate":1})") !=
          std::string::npos);
    CHECK(text.find(R"("deadline":1764400000,"windows":[{"group":"finance",)"
                    R"("days":["mon","tue","wed","thu","fri"],"start":"22:00","end":"04:00",)"
                    R"("tz":"America/New_York"})") != std::string::npos);
    CHECK(text.ends_with(R"({"group":"*","days":["sun"],"start":"02:00","end":"04:00",)"
                         R"("tz":"Asia/Kolkata"}]}})"));

    // The smallest rollout: no rings, no deadline, no windows.
    m.rollout = Rollout{};
    const std::string minimal = serialize_manifest(m);
    CHECK(minimal.ends_with(R"("rollout":{"rings":[],"windows":[]}})"));
    auto parsed_minimal = parse_manifest(minimal);
    REQUIRE(parsed_minimal.has_value());
    CHECK(*parsed_minimal == m);
}

TEST_CASE("the valid rollout file parses with every field", "[core]") {
    auto m = parse_manifest(read_data(kDataDir / "valid_rollout.json"));
    REQUIRE(m.has_value());
    REQUIRE(m->rollout.has_value());
    const Rollout& r = *m->rollout;
    REQUIRE(r.rings.size() == 3);
    CHECK(r.rings[0].name == "canary");
    CHECK(r.rings[0].groups == std::vector<std::string>{"it-staff"});
    CHECK(r.rings[0].devices == std::vector<std::string>{"0123456789abcdef0123456789abcdef"});
    CHECK(r.rings[0].fleet_bp == 100);
    CHECK(r.rings[0].success_bp == 9500);
    CHECK(r.rings[0].soak_s == 3600);
    CHECK(r.rings[0].max_failure_bp == 2000);
    CHECK(r.rings[1].fleet_bp == 1050);
    CHECK(r.rings[1].groups.empty());
    CHECK(r.rings[2].success_bp == kBasisPoints);
    CHECK(r.rings[2].max_failure_bp == 500);
    CHECK(r.deadline == 1764400000);
    REQUIRE(r.windows.size() == 3);
    CHECK(r.windows[0] == Window{"finance", 0x1f, 22 * 60, 4 * 60, "America/New_York"});
    CHECK(r.windows[1] == Window{"finance-eu", 0x60, 0, 24 * 60, "Europe/Berlin"});
    CHECK(r.windows[2] == Window{"*", 0x40, 120, 240, "Asia/Kolkata"});
}

TEST_CASE("validate_manifest refuses a rollout a publisher built wrongly", "[core]") {
    Manifest m = sample_manifest();
    m.rollout = sample_rollout();
    CHECK(validate_manifest(m).has_value());

    const auto refused = [&](auto change, std::string_view field) {
        Manifest bad = m;
        change(*bad.rollout);
        auto r = validate_manifest(bad);
        REQUIRE_FALSE(r.has_value());
        INFO(r.error().message);
        CHECK(r.error().message.find(field) != std::string::npos);
    };
    refused([](Rollout& r) { r.rings[0].success_bp = kBasisPoints + 1; },
            "rings[0].success_threshold");
    refused([](Rollout& r) { r.rings[1].fleet_bp = kBasisPoints + 1; }, "rings[1].percent");
    refused([](Rollout& r) { r.rings[2].max_failure_bp = kBasisPoints + 1; },
            "rings[2].max_failure_rate");
    refused([](Rollout& r) { r.rings[0].soak_s = -1; }, "rings[0].soak_s");
    refused([](Rollout& r) { r.rings[2].groups.clear(); }, "rings[2]");
    refused([](Rollout& r) { r.rings.resize(kMaxRings + 1, r.rings[0]); }, "rollout.rings");
    refused([](Rollout& r) { r.windows[0].days = 0; }, "windows[0].days");
    refused([](Rollout& r) { r.windows[0].days = 0x80; }, "windows[0].days");
    refused([](Rollout& r) { r.windows[0].start_min = 24 * 60; }, "windows[0].start");
    refused([](Rollout& r) { r.windows[0].end_min = 0; }, "windows[0].end");
    refused([](Rollout& r) { r.windows[0].end_min = 24 * 60 + 1; }, "windows[0].end");
    refused([](Rollout& r) { r.windows[0].zone = "Europe/../../etc"; }, "windows[0].tz");
    refused([](Rollout& r) { r.deadline = 1763800000 - 1; }, "rollout.deadline");

    // The deadline may be the creation time itself: an emergency that ignores windows at once.
    Manifest immediate = m;
    immediate.rollout->deadline = immediate.created;
    CHECK(validate_manifest(immediate).has_value());
}

TEST_CASE("zone names are IANA-shaped and never a path out of the zone folder", "[core]") {
    for (std::string_view ok : {"UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires",
                                "Etc/GMT+5", "America/Port-au-Prince", "EST5EDT"}) {
        INFO(ok);
        CHECK(validate_zone_name(ok).has_value());
    }
    for (std::string_view bad :
         {"", "/etc/localtime", "..", "Europe/../../etc/shadow", "Europe/", "Europe//Berlin",
          "./UTC", "Europe/Ber lin", "Europe\\Berlin", "-Europe"}) {
        INFO(bad);
        CHECK(validate_zone_name(bad).error().code == Errc::malformed);
    }
    CHECK(validate_zone_name(std::string(kMaxZoneNameBytes + 1, 'A')).error().code ==
          Errc::too_large);
}

TEST_CASE("the idempotent flag is signed in only when set and only true is accepted", "[core]") {
    Manifest m = sample_manifest();
    CHECK(serialize_manifest(m) == kSampleBytesBeforeRollout);  // off: the old bytes
    m.idempotent = true;
    const std::string text = serialize_manifest(m);
    CHECK(text.ends_with(R"(,"idempotent":true})"));
    auto parsed = parse_manifest(text);
    REQUIRE(parsed.has_value());
    CHECK(parsed->idempotent);
    CHECK(serialize_manifest(*parsed) == text);
    CHECK_FALSE(parse_manifest(kSampleBytesBeforeRollout)->idempotent);
    // A second spelling of the default, or a non-boolean, is a different document: refused.
    for (const char* bad :
         {R"(,"idempotent":false})", R"(,"idempotent":1})", R"(,"idempotent":"yes"})"}) {
        std::string doc{kSampleBytesBeforeRollout};
        doc.replace(doc.size() - 1, 1, bad);
        INFO(doc);
        auto r = parse_manifest(doc);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == patchswarm::Errc::malformed);
    }
}
