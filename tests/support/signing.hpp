// Test support: documents signed as the seeder signs them, and the wall clock for tests that
// talk to real programs (their expiry checks read the real time, not a FakeEnv).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/envelope.hpp"
#include "crypto/crypto.hpp"

namespace patchswarm::test {

// `payload` in an envelope of `type`, signed by `key` alone.
inline std::string seal(std::string_view type, const std::string& payload,
                        const crypto::KeyPair& key) {
    const crypto::KeyPair keys[] = {key};
    return core::serialize_envelope(core::sign_envelope(type, crypto::as_bytes(payload), keys));
}

// Unix seconds now, from the system clock.
inline std::int64_t wall_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace patchswarm::test
