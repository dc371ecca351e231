#include "modules/respond/respond.h"

#include <toml++/toml.h>

#include "common/config_reader.h"
#include "common/variables.h"

namespace wraith {

bool status_forbids_body(int status) {
    return status == 204 || status == 205 || status == 304;
}

RespondHandler::RespondHandler(int status, std::string body, std::string content_type)
    : status_(status), body_(std::move(body)), content_type_(std::move(content_type)) {}

void RespondHandler::set_trailers(std::vector<std::pair<std::string, std::string>> trailers) {
    trailer_storage_ = std::move(trailers);
    trailers_.clear();
    trailer_names_.clear();
    for (const auto& [name, value] : trailer_storage_) {
        trailers_.add(name, value);
        trailer_names_ += (trailer_names_.empty() ? "" : ", ") + name;
    }
}

bool RespondHandler::set_body_variables(std::string* error, size_t* at) {
    if (!body_vars_.compile(body_, error, at))
        return false;
    if (body_vars_.constant())
        body_ = body_vars_.constant_value();
    return true;
}

void RespondHandler::handle(Request& req, BodyReader& body, ResponseWriter& out) const {
    if (req.has_body)
        body.discard();
    const std::string_view text =
        body_vars_.constant() ? std::string_view(body_) : body_vars_.expand(req, *req.arena);
    // Serving a site's error page: answer with the error's status.
    const int status = req.override_status ? req.override_status : status_;
    const bool no_body = status_forbids_body(status);

    auto* head = req.arena->make<ResponseHead>();
    head->status = status;
    if (!content_type_.empty())
        head->headers.add("content-type", content_type_);
    head->content_length = no_body ? -1 : int64_t(text.size());
    if (no_body || (text.empty() && trailers_.size() == 0) || req.method_id == Method::head) {
        out.send_headers(*head, true);
        return;
    }
    if (trailers_.size() > 0) {
        head->content_length = -1; // streamed: HTTP/1.1 chunked framing carries trailers
        head->headers.add("trailer", trailer_names_);
        out.send_headers(*head, false);
        out.send_body(text, false);
        out.send_trailers(trailers_);
        return;
    }
    out.send_headers(*head, false);
    out.send_body(text, true);
}

std::unique_ptr<Handler> build_respond(TableReader& t, BuildContext& ctx) {
    const size_t errors_before = t.diag().count();
    int64_t status = t.integer("status", 200, 100, 599);
    if (status < 200)
        t.error("status", "status " + std::to_string(status) +
                              " is informational (1xx) and cannot end a response; "
                              "expected 200..599");
    std::string body = t.string("body", "");
    if (!body.empty() && status_forbids_body(int(status)))
        t.error("body", "a " + std::to_string(status) +
                            " response has no body; remove \"body\" or change \"status\"");
    std::string content_type;
    if (t.has("content_type")) {
        content_type = t.string("content_type", "");
        if (content_type.empty() || content_type.find_first_of("\r\n") != std::string::npos)
            t.error("content_type", "expected a media type such as \"text/html\"");
    } else if (!body.empty()) {
        content_type = "text/plain; charset=utf-8";
    }
    if (t.diag().count() != errors_before)
        return nullptr;
    std::vector<std::pair<std::string, std::string>> trailers;
    if (const toml::table* tt = t.table("trailers")) {
        for (const auto& [key, value] : *tt) {
            std::string name(key.str());
            for (char& c : name)
                c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
            const auto* v = value.as_string();
            bool token =
                !name.empty() &&
                name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~") ==
                    std::string::npos;
            if (!token || !v || v->get().find_first_of("\r\n") != std::string::npos)
                t.error("trailers", "expected field names mapped to strings, e.g. trailers = "
                                    "{ \"x-checksum\" = \"abc\" }");
            else
                trailers.emplace_back(std::move(name), v->get());
        }
        if (status_forbids_body(int(status)))
            t.error("trailers", "a " + std::to_string(status) + " response has no body to follow");
    }
    auto handler =
        std::make_unique<RespondHandler>(int(status), std::move(body), std::move(content_type));
    handler->set_trailers(std::move(trailers));
    std::string error;
    size_t at = 0;
    if (!handler->set_body_variables(&error, &at)) {
        t.error("body", error + " (at character " + std::to_string(at + 1) + ")");
        return nullptr;
    }
    if (std::string bad = check_captures(handler->body_variables().highest_capture(), ctx);
        !bad.empty()) {
        t.error("body", bad);
        return nullptr;
    }
    return handler;
}

// Answers with a fixed status and body.
const ModuleSpec& respond_module() {
    static const ModuleSpec spec{
        .key = "respond", .is_handler = true, .build_handler = build_respond};
    return spec;
}

} // namespace wraith
