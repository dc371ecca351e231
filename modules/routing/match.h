// `match = { ... }` on a route: conditions on the whole request, all of which must hold for the
// route to be taken (otherwise routing goes on to the next candidate). See man wraith.toml(5),
// "match". Also the value tests other rules share (exact text, "~regex", true/false).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/cidr.h"
#include "common/module.h"
#include "common/regex.h"

namespace toml {
inline namespace v3 {
class node;
}
} // namespace toml

namespace wraith::routing {

// One value test: "text" (exact), "~regex" (search), true (present) or false (absent).
struct ValueTest {
    enum class Kind : uint8_t { equals, regex, present, absent };
    Kind kind = Kind::present;
    std::string text;
    std::shared_ptr<const Regex> re;

    bool test(std::optional<std::string_view> value) const;
    std::string describe() const;
};

// Reads a value test from `n`; "" on success, else the message.
std::string parse_value_test(const toml::node& n, ValueTest& out, bool allow_bool = true);

class MatchCondition final : public RouteCondition {
public:
    struct Node;
    explicit MatchCondition(std::unique_ptr<Node> root);
    ~MatchCondition() override;
    bool matches(const Request& req) const override;
    bool explain(const Request& req, std::string& why) const override;

private:
    std::unique_ptr<Node> root_;
};

std::unique_ptr<RouteCondition> build_match(TableReader& r, BuildContext& ctx);

} // namespace wraith::routing
