#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "crypto/crypto.hpp"

int main(int argc, char** argv) {
    patchswarm::crypto::init();
    return Catch::Session().run(argc, argv);
}
