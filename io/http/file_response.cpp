#include "io/http/file_response.hpp"

#include <cstdint>
#include <system_error>

namespace patchswarm::io::http {

Response file_response(const std::filesystem::path& file, const std::string* range_header,
                       const std::string& content_type) {
    // symlink_status: a symlink is not served even if it points at a regular file, because where
    // it points was never checked by the caller's path validation.
    std::error_code ec;
    const auto status = std::filesystem::symlink_status(file, ec);
    if (ec || status.type() != std::filesystem::file_type::regular) {
        return error_response(404, "not_found", "file not found");
    }
    const std::uint64_t size = std::filesystem::file_size(file, ec);
    if (ec) return error_response(404, "not_found", "file not found");

    Response res;
    res.content_type = content_type;
    res.headers["Accept-Ranges"] = "bytes";
    const ByteRange range = range_header ? parse_range(*range_header, size) : ByteRange{};
    switch (range.kind) {
        case ByteRange::Kind::whole:
            res.status = 200;
            res.file = FileRange{file, 0, size};
            break;
        case ByteRange::Kind::partial:
            res.status = 206;
            res.file = FileRange{file, range.first, range.last - range.first + 1};
            res.headers["Content-Range"] = "bytes " + std::to_string(range.first) + "-" +
                                           std::to_string(range.last) + "/" + std::to_string(size);
            break;
        case ByteRange::Kind::unsatisfiable:
            res = error_response(416, "range_not_satisfiable",
                                 "requested range is beyond the end of the file");
            res.headers["Content-Range"] = "bytes */" + std::to_string(size);
            break;
    }
    return res;
}

}  // namespace patchswarm::io::http
