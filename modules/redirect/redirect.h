// `redirect = { to = "https://example.com$request_uri", status = 301 }`: answers every request
// with a redirect whose Location is `to` with request variables expanded.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/module.h"
#include "common/variables.h"

namespace wraith {

// A Location template compiled at config time: literal text and variables, in order.
class LocationTemplate {
public:
    enum class Var : uint8_t {
        literal,     // `text`
        scheme,      // "http" / "https"
        host,        // request host, lower-case, without port
        request_uri, // path and query as received ("/a%20b?x=1")
        uri,         // decoded, normalised path (re-encoded where a URI needs it)
        query,       // query without '?'
        other,       // any other variable (common/variables.h): $arg_x, $1, $geo_country ...
    };
    struct Part {
        Var var = Var::literal;
        std::string text;             // literal text, or an `other` variable's suffix
        VariableGetter get = nullptr; // `other`
    };

    // Parses `$name`, `${name}` and `$$` (a literal '$'). On error returns nullopt and sets
    // `error` to a message that names the problem and its offset in `text`.
    static std::optional<LocationTemplate> parse(std::string_view text, std::string& error);

    // Expands into `arena`. Variable values are percent-encoded where they hold bytes a URI
    // may not carry (controls, spaces, non-ASCII; for $uri also '%', '?' and '#'), so a request
    // can never inject header lines or change the URL's structure.
    std::string_view expand(const Request& req, Arena& arena) const;

    const std::vector<Part>& parts() const { return parts_; }
    // The highest $1..$9 it uses (0: none).
    int highest_capture() const { return highest_capture_; }

private:
    std::vector<Part> parts_;
    int highest_capture_ = 0;
};

class RedirectHandler final : public Handler {
public:
    RedirectHandler(LocationTemplate to, int status);
    void handle(Request& req, BodyReader& body, ResponseWriter& out) const override;

private:
    LocationTemplate to_;
    int status_;
};

// HTML-escapes & < > " ' into `arena`.
std::string_view html_escape(std::string_view s, Arena& arena);

std::unique_ptr<Handler> build_redirect(TableReader& options, BuildContext& ctx);

} // namespace wraith
