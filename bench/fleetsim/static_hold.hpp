// The baseline for the long-poll path: N keep-alive connections (one per loopback source
// address) held open to a plain HTTP server (nginx serving a static file), then one GET of the
// file on every connection at the same instant. The fan-out time is the figure to set beside
// the seeder's publish -> told; the server's RSS and CPU over the hold beside the seeder's.
//
// Threading: one io_context on the calling thread. Raw Asio sockets (no Beast): one fixed GET
// and a Content-Length answer are all this needs.
#pragma once

#include <filesystem>
#include <string>

namespace patchswarm::fleetsim {

struct StaticOptions {
    std::string url;  // http://127.0.0.1:PORT/PATH (IPv4 literal)
    int connections = 1000;
    std::string source_base = "127.10.0.1";
    double ramp_per_s = 2000;
    int hold_s = 30;
    int timeout_s = 120;
    std::filesystem::path server_pid_file;  // sample the server's RSS and CPU from /proc
    std::filesystem::path out;              // JSON summary (stdout when empty)
    std::string label;
};

// Returns 0 when every connection was held and answered, 1 otherwise.
int run_static(const StaticOptions& options);

}  // namespace patchswarm::fleetsim
