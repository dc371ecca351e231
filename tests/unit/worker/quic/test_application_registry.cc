#include <catch2/catch.hpp>

#include "worker/quic/application.h"

namespace {

std::unique_ptr<wraith::quic::Application> create_none(wraith::quic::AppConnection&) {
    return nullptr;
}
std::unique_ptr<wraith::quic::Application> create_other(wraith::quic::AppConnection&) {
    return nullptr;
}

} // namespace

TEST_CASE("a QUIC application is found by the ALPN it registered", "[quic][application]") {
    using namespace wraith::quic;
    register_application({"unit-test-alpn", create_none, 7});
    const ApplicationSpec* spec = find_application("unit-test-alpn");
    REQUIRE(spec != nullptr);
    CHECK(spec->create == create_none);
    CHECK(spec->no_error_code == 7);
    CHECK(find_application("unit-test-alp") == nullptr); // whole identifiers only
    CHECK(find_application("") == nullptr);
}

TEST_CASE("registering an ALPN again replaces its application, keeping its place",
          "[quic][application]") {
    using namespace wraith::quic;
    register_application({"unit-test-first", create_none, 0});
    register_application({"unit-test-second", create_none, 0});
    const size_t count = applications().size();
    register_application({"unit-test-first", create_other, 1});
    CHECK(applications().size() == count);
    CHECK(find_application("unit-test-first")->create == create_other);
    size_t first = 0, second = 0;
    for (size_t i = 0; i < applications().size(); ++i) {
        if (applications()[i].alpn == "unit-test-first")
            first = i;
        if (applications()[i].alpn == "unit-test-second")
            second = i;
    }
    CHECK(first < second); // the server's ALPN preference is registration order
}
