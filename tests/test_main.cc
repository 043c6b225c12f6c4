// test_main.cc: the Catch2 main shared by every unit-test program.
#include "config.h"
#ifdef HAVE_CATCH2_V3
#include <catch2/catch_session.hpp>
#else
#define CATCH_CONFIG_RUNNER
// GCC 12 with the sanitizers warns inside libstdc++'s <regex> as Catch2 2.x instantiates it
// (a false -Wmaybe-uninitialized in std::function); not our code, so silenced here only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <catch2/catch.hpp>
#pragma GCC diagnostic pop
#endif

int main(int argc, char* argv[])
{
    return Catch::Session().run(argc, argv);
}
