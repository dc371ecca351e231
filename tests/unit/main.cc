// The one Catch2 main for every unit test file under tests/unit/. Handlers log client errors
// at info level; tests assert on responses, so the log is kept to warnings and worse. The
// built-in modules are registered like the server's main() does; test-only modules add
// themselves from static initialisers (common/module.h ModuleRegistrar).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "common/log.h"
#include "modules/modules.h"

int main(int argc, char** argv) {
    wraith::ErrorLog::set_level(wraith::LogLevel::warn);
    wraith::register_builtin_modules();
    return Catch::Session().run(argc, argv);
}
