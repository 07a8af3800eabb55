#include "seeder/seeding.hpp"

#include <spdlog/spdlog.h>

#include "io/swarm/session.hpp"
#include "seeder/enrolment.hpp"

namespace patchswarm::seeder {

void Seeding::reconcile(const Catalog& catalog) {
    const auto& served = catalog.served();
    for (auto it = seeding_.begin(); it != seeding_.end();) {
        const auto w = served.find(it->first);
        if (w != served.end() && w->second.entry.manifest_sha256 == it->second) {
            ++it;
            continue;
        }
        session_.remove(it->first);
        spdlog::info("release {} no longer seeded ({})", it->first,
                     w == served.end() ? "withdrawn" : "replaced");
        it = seeding_.erase(it);
    }
    for (const auto& [id, release] : served) {
        if (release.ssl && !fleet_ca_) {
            spdlog::error(
                "release {} is an SSL torrent but {} is missing: no peer can connect to this "
                "seeder for it",
                id, fleet_ca_cert(paths_).string());
        }
        if (!seeding_.contains(id)) add(release);
    }
}

void Seeding::add(const ServedRelease& release) {
    const std::string& id = release.entry.id;
    io::swarm::AddParams params;
    params.id = id;
    params.torrent = release.torrent;
    params.save_path = paths_.payload_dir(id);
    params.seed = true;
    if (auto ok = session_.add(std::move(params)); !ok) {
        spdlog::error("release {} cannot be seeded: {}", id, ok.error().message);
        return;
    }
    seeding_.emplace(id, release.entry.manifest_sha256);
    spdlog::info("release {} added: checking payload, then seeding", id);
}

}  // namespace patchswarm::seeder
