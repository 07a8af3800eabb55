// A site relay: an endpoint that re-serves the signed metadata it has accepted (root documents,
// feed, manifests, torrents) to its LAN neighbours, with the seeder's routes. Everything it
// serves is either signed by keys the root names or bound by a signed hash, so a relay can
// withhold but never forge; neighbours list it after the seeder in --seeder and keep working when
// HQ is unreachable.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "io/http/server.hpp"

namespace patchswarm::daemon {

class Relay {
  public:
    explicit Relay(boost::asio::io_context& io);
    [[nodiscard]] Result<std::uint16_t> listen(const std::string& host_port);
    void stop();

    void set_root(std::uint64_t version, std::string envelope) {
        roots_[version] = std::move(envelope);
    }
    void set_feed(std::string envelope, std::uint64_t sequence);
    void set_manifest(const std::string& id, std::string envelope) {
        manifests_[id] = std::move(envelope);
    }
    void set_torrent(const std::string& id, const std::vector<std::uint8_t>& bytes) {
        torrents_[id] = std::string(bytes.begin(), bytes.end());
    }

    // Pure request -> response mapping (no socket), for tests.
    io::http::Response handle(const io::http::Request& req) const;

  private:
    std::map<std::uint64_t, std::string> roots_;
    std::string feed_;
    std::uint64_t feed_sequence_ = 0;
    std::map<std::string, std::string> manifests_;
    std::map<std::string, std::string> torrents_;
    io::http::Server server_;
};

}  // namespace patchswarm::daemon
