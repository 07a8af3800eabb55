// Answering a GET of a file: checks the file and the Range header and describes the bytes to
// send (Response::file), which the server (server.cpp) opens and streams. No Beast here.
#pragma once

#include <filesystem>
#include <string>

#include "io/http/parse.hpp"

namespace patchswarm::io::http {

// Builds the answer for a GET of a file, honouring a single "Range: bytes=a-b" (206, or 416
// when unsatisfiable). 404 if the file does not exist or is not a regular file; a symlink is
// refused too, since its target escaped the caller's path checks. Several ranges or a Range the
// parser does not understand are ignored (200 with the whole file, as RFC 7233 allows). The
// server sends Accept-Ranges and Content-Length for file responses and answers HEAD without body.
// Looks at the file (its type and size) but does not open it; the server does when it writes.
// Safe to call from any thread.
Response file_response(const std::filesystem::path& file, const std::string* range_header,
                       const std::string& content_type = "application/octet-stream");

}  // namespace patchswarm::io::http
