// Which seeder the agent talks to, and how its HTTP requests are built: the update cycle, the
// release runner (torrents) and the reporter share one, so a failover by one moves them all.
// Used on the io_context thread only.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "io/http/client.hpp"

namespace patchswarm::daemon {

class SeederClient {
  public:
    SeederClient(std::vector<std::string> seeders, std::string bind_address)
        : seeders_(std::move(seeders)), bind_address_(std::move(bind_address)) {}

    // The seeder in use (base URL).
    const std::string& current() const { return seeders_[index_ % seeders_.size()]; }
    // HQ: the first --seeder (web seeds, certificate renewal); relays serve no payload.
    const std::string& hq() const { return seeders_.front(); }
    const std::vector<std::string>& all() const { return seeders_; }
    const std::string& bind_address() const { return bind_address_; }
    // After a failure: the next one.
    void fail_over() { ++index_; }

    // A GET of `path` on the current seeder, answer capped at max_bytes.
    io::http::ClientRequest get(
        const std::string& path, std::size_t max_bytes,
        std::chrono::milliseconds timeout = std::chrono::seconds(20)) const {
        io::http::ClientRequest r;
        r.url = current() + path;
        r.max_response_bytes = max_bytes;
        r.timeout = timeout;
        r.local_address = bind_address_;
        return r;
    }

  private:
    std::vector<std::string> seeders_;
    std::string bind_address_;
    std::size_t index_ = 0;
};

}  // namespace patchswarm::daemon
