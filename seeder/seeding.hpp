// Seeding reconciliation: keeps what the libtorrent session seeds equal to the catalog's served
// releases. A release whose manifest changed (re-published with --replace) is removed and added
// again; a withdrawn one is removed.
//
// Threading: serve's io_context thread (the session's calls are posted to libtorrent).
#pragma once

#include <map>
#include <string>

#include "seeder/catalog.hpp"

namespace patchswarm::io::swarm {
class Session;
}

namespace patchswarm::seeder {

class Seeding {
  public:
    // `session` must outlive this. `fleet_ca`: the repository has a fleet CA; without one an
    // SSL torrent cannot be served, which is logged.
    Seeding(io::swarm::Session& session, RepoPaths paths, bool fleet_ca)
        : session_(session), paths_(std::move(paths)), fleet_ca_(fleet_ca) {}

    // Removes what the catalog no longer serves (or serves with another manifest), adds what it
    // serves and is not seeded yet. Failures are logged per release and retried by the next call.
    void reconcile(const Catalog& catalog);

    // id -> manifest hash of every release added to the session.
    const std::map<std::string, std::string>& seeding() const { return seeding_; }

  private:
    void add(const ServedRelease& release);

    io::swarm::Session& session_;
    RepoPaths paths_;
    bool fleet_ca_;
    std::map<std::string, std::string> seeding_;
};

}  // namespace patchswarm::seeder
