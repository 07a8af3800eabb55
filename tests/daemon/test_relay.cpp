// The site relay's routes (pure request -> response, no socket): the root documents it has
// verified, by version, next to the feed and manifests; nothing else.
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>

#include "daemon/relay.hpp"

using namespace patchswarm;

namespace {

io::http::Response get(const daemon::Relay& relay, const std::string& path) {
    io::http::Request req;
    req.method = "GET";
    req.path = path;
    return relay.handle(req);
}

}  // namespace

TEST_CASE("a relay serves the root versions it holds and 404 for any other", "[core]") {
    boost::asio::io_context io;
    daemon::Relay relay(io);
    relay.set_root(1, "root-one");
    relay.set_root(2, "root-two");
    relay.set_feed("feed", 5);

    CHECK(get(relay, "/v1/root/1.json").status == 200);
    CHECK(get(relay, "/v1/root/2.json").body == "root-two");
    CHECK(get(relay, "/v1/feed").body == "feed");
    // The endpoints' update cycle stops at the first 404: the relay's newest version.
    for (const char* missing :
         {"/v1/root/3.json", "/v1/root/01.json", "/v1/root/1", "/v1/feed-key", "/v1/root/"}) {
        INFO(missing);
        CHECK(get(relay, missing).status == 404);
    }
}
