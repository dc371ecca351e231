// `respond = { status = 200, body = "ok\n", content_type = "text/plain; charset=utf-8" }`:
// answers every request with a fixed status and body (health checks, placeholders, blocks),
// optionally followed by fixed trailer fields (`trailers = { "x-checksum" = "..." }`).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/module.h"
#include "common/variables.h"

namespace wraith {

class RespondHandler final : public Handler {
public:
    // `content_type` empty: no content-type field.
    RespondHandler(int status, std::string body, std::string content_type);
    void handle(Request& req, BodyReader& body, ResponseWriter& out) const override;

    int status() const { return status_; }
    const std::string& body() const { return body_; }
    // A body with variables; "" or false with the problem and its offset.
    bool set_body_variables(std::string* error, size_t* at);
    const VarString& body_variables() const { return body_vars_; }
    const std::string& content_type() const { return content_type_; }
    // Lower-case names; the body is then streamed so HTTP/1.1 can carry them (chunked).
    void set_trailers(std::vector<std::pair<std::string, std::string>> trailers);

private:
    int status_;
    std::string body_;
    VarString body_vars_; // the body with variables ($host, $1 ...): expanded per request
    std::string content_type_;
    std::vector<std::pair<std::string, std::string>> trailer_storage_;
    Headers trailers_;          // views into trailer_storage_
    std::string trailer_names_; // the Trailer field: "x-checksum, x-count"
};

// RFC 9110 §15.3.5, §15.3.6, §15.4.5: these statuses never carry content.
bool status_forbids_body(int status);

std::unique_ptr<Handler> build_respond(TableReader& options, BuildContext& ctx);

} // namespace wraith
