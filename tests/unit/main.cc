// The one Catch2 main for every unit test file under tests/unit/. Handlers log client errors
// at info level; tests assert on responses, so the log is kept to warnings and worse.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "common/log.h"

int main(int argc, char** argv) {
    wraith::ErrorLog::set_level(wraith::LogLevel::warn);
    return Catch::Session().run(argc, argv);
}
