// The phase engine (worker/pipeline.h) without a running worker: a config with test modules,
// a router, recording writers. Filters of the server, site and route run as one chain in
// `order`; an access filter answers, or pauses and resumes later, or is cancelled when the
// client goes away while it waits; request-body and response filters wrap in chain order; log
// filters see every exchange, routed or not; the accept phase refuses and counts connections.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "common/config.h"
#include "common/module.h"
#include "modules/router/router.h"
#include "support/recording_writer.h"
#include "worker/pipeline.h"

using namespace wraith;
using modtest::NoBody;
using modtest::RecordingWriter;
using modtest::TestExchange;

namespace {

// What the test modules saw, in order.
std::vector<std::string> g_events;

// Answers 200 with body "handler:OPTION" (and what its reader says, for body filters).
class EchoHandler final : public Handler {
public:
    explicit EchoHandler(std::string name) : name_(std::move(name)) {}
    void handle(Request& req, BodyReader& body, ResponseWriter& out) const override {
        g_events.push_back("handler:" + name_);
        std::string text = "handler:" + name_ + std::string(body.peek());
        ResponseHead head;
        head.content_length = static_cast<int64_t>(text.size());
        out.send_headers(head, false);
        out.send_body(text, true);
    }

private:
    std::string name_;
};

std::unique_ptr<Handler> build_echo(TableReader& r, BuildContext&) {
    return std::make_unique<EchoHandler>(r.string("name", "echo"));
}

// A filter whose behaviour its table picks: `mode` = "next", "answer" (403), "pause" (waits
// for the test to resume it), plus a name for the event log. It also logs every phase hook.
class TestFilter final : public Filter {
public:
    TestFilter(std::string name, std::string mode, unsigned phases)
        : name_(std::move(name)), mode_(std::move(mode)), phases_(phases) {}
    unsigned phases() const override { return phases_; }
    bool accept(AcceptContext& ctx) const override {
        g_events.push_back("accept:" + name_);
        if (mode_ != "refuse")
            return true;
        ctx.refusal_status = 503;
        return false;
    }
    void connection_closed(const ConnectionInfo&, ModuleWorkers*) const override {
        g_events.push_back("closed:" + name_);
    }
    AccessVerdict access(Request& req, ResponseWriter& out, AccessResume& resume) const override {
        g_events.push_back("access:" + name_);
        if (mode_ == "answer") {
            ResponseHead head;
            head.status = 403;
            head.content_length = 0;
            out.send_headers(head, true);
            return AccessVerdict::answered;
        }
        if (mode_ == "pause") {
            paused = &resume;
            resume.on_cancel([this] {
                g_events.push_back("cancelled:" + name_);
                paused = nullptr;
            });
            return AccessVerdict::paused;
        }
        if (mode_ == "resume-inside") { // answers at once through the resume path
            resume.resume(AccessVerdict::next);
            return AccessVerdict::paused;
        }
        return AccessVerdict::next;
    }
    BodyReader* wrap_body(Request& req, BodyReader& next) const override {
        g_events.push_back("body:" + name_);
        return req.arena->make<PrefixBody>(next, name_);
    }
    ResponseWriter* wrap(Request& req, ResponseWriter& next) const override {
        g_events.push_back("wrap:" + name_);
        return &next;
    }
    void log(const Request&, const ExchangeSummary& s) const override {
        g_events.push_back("log:" + name_ + ":" + std::to_string(s.status));
    }

    mutable AccessResume* paused = nullptr;

private:
    // A reader that shows its filter's name in front of what the inner one holds.
    class PrefixBody final : public BodyReader {
    public:
        PrefixBody(BodyReader& next, const std::string& name)
            : next_(next), text_("<" + name + ">" + std::string(next.peek())) {}
        std::string_view peek() override { return text_; }
        void consume(size_t) override {}
        bool finished() const override { return true; }
        bool failed() const override { return false; }
        void on_data(Callback) override {}
        void pause() override {}
        void resume() override {}
        void discard() override { next_.discard(); }

    private:
        BodyReader& next_;
        std::string text_;
    };

    std::string name_;
    std::string mode_;
    unsigned phases_;
};

std::vector<const TestFilter*> g_filters; // every one built, to find the pausing one

std::unique_ptr<Filter> build_filter(TableReader& r, BuildContext&) {
    std::string name = r.string("name", "f");
    std::string mode = r.string("mode", "next");
    unsigned phases = phase_bit(Phase::access) | phase_bit(Phase::log);
    if (r.boolean("accept", false))
        phases |= phase_bit(Phase::accept);
    if (r.boolean("body", false))
        phases |= phase_bit(Phase::request_body);
    if (r.boolean("wrap", false))
        phases |= phase_bit(Phase::response);
    auto f = std::make_unique<TestFilter>(name, mode, phases);
    g_filters.push_back(f.get());
    return f;
}

// Two filter modules of different `order`, so chains of both show the ordering.
const ModuleRegistrar echo_registrar{
    ModuleSpec{.key = "pipeline_echo", .is_handler = true, .build_handler = build_echo}};
const ModuleRegistrar first_registrar{
    ModuleSpec{.key = "pipeline_first", .order = 10, .build_filter = build_filter}};
const ModuleRegistrar second_registrar{
    ModuleSpec{.key = "pipeline_second", .order = 20, .build_filter = build_filter}};

struct Setup {
    std::shared_ptr<const Config> config;
    std::unique_ptr<Router> router;
    std::unique_ptr<Pipeline> pipeline;

    explicit Setup(const std::string& sites) {
        g_events.clear();
        g_filters.clear();
        Diagnostics diag;
        config = load_config_text("[[listen]]\naddress = \"127.0.0.1:8080\"\n" + sites,
                                  "pipeline.toml", "/tmp", diag);
        for (const auto& d : diag.list())
            FAIL(d.text());
        REQUIRE(config);
        router = std::make_unique<Router>(*config);
        pipeline = std::make_unique<Pipeline>(*config, *router, nullptr, nullptr);
    }

    // The filter that is waiting (paused), if any.
    static const TestFilter* paused() {
        for (const TestFilter* f : g_filters)
            if (f->paused)
                return f;
        return nullptr;
    }
};

// One exchange through the pipeline.
struct Run {
    TestExchange ex;
    NoBody body;
    RecordingWriter out;
    explicit Run(Pipeline& p, std::string_view path, std::string_view host = "a.test") {
        ex.req.host = host;
        ex.req.path = ex.req.target = ex.arena.copy(path);
        p.run(ex.req, body, out);
    }
};

} // namespace

TEST_CASE("pipeline: server, site and route filters run as one chain in order") {
    Setup s(R"(
[server]
pipeline_second = { name = "server" }
[[site]]
hosts = ["a.test"]
pipeline_first = { name = "site" }
  [[site.route]]
  path = "/"
  pipeline_echo = { name = "root" }
  [[site.route]]
  path = "/own/"
  pipeline_echo = { name = "own" }
  pipeline_second = { name = "route" }
  [[site.route]]
  path = "/off/"
  pipeline_echo = { name = "off" }
  pipeline_first = false
)");
    {
        Run r(*s.pipeline, "/x");
        CHECK(r.out.status == 200);
        CHECK(r.out.body == "handler:root");
        // `order` decides, not the scope: the site's first (10), the server's second (20).
        CHECK(g_events == std::vector<std::string>{"access:site", "access:server", "handler:root"});
        s.pipeline->finish(r.ex.req, ExchangeSummary{200});
        CHECK(g_events.back() == "log:server:200");
    }
    g_events.clear();
    {
        Run r(*s.pipeline, "/own/x");
        // The route's pipeline_second replaces the server's.
        CHECK(g_events == std::vector<std::string>{"access:site", "access:route", "handler:own"});
    }
    g_events.clear();
    {
        Run r(*s.pipeline, "/off/x");
        // `pipeline_first = false` removed the site's filter on this route only.
        CHECK(g_events == std::vector<std::string>{"access:server", "handler:off"});
    }
}

TEST_CASE("pipeline: a request with no route or no site still passes its scope's filters") {
    Setup s(R"(
[server]
pipeline_first = { name = "server" }
[[site]]
hosts = ["a.test"]
pipeline_second = { name = "site" }
  [[site.route]]
  path = "=/only"
  pipeline_echo = {}
)");
    {
        Run r(*s.pipeline, "/nowhere");
        CHECK(r.out.status == 404);
        CHECK(g_events == std::vector<std::string>{"access:server", "access:site"});
        s.pipeline->finish(r.ex.req, ExchangeSummary{404});
        CHECK(g_events.back() == "log:site:404");
    }
    g_events.clear();
    {
        Run r(*s.pipeline, "*");
        CHECK(r.out.status == 400); // asterisk-form without OPTIONS: refused before any filter
        CHECK(g_events.empty());
    }
}

TEST_CASE("pipeline: an access filter answers, and nothing after it runs") {
    Setup s(R"(
[[site]]
hosts = ["a.test"]
  [[site.route]]
  pipeline_echo = {}
  pipeline_first = { name = "gate", mode = "answer" }
  pipeline_second = { name = "later", wrap = true }
)");
    Run r(*s.pipeline, "/");
    CHECK(r.out.status == 403);
    CHECK(g_events == std::vector<std::string>{"access:gate"});
}

TEST_CASE("pipeline: a paused access filter resumes the exchange later") {
    Setup s(R"(
[[site]]
hosts = ["a.test"]
  [[site.route]]
  pipeline_echo = { name = "h" }
  pipeline_first = { name = "wait", mode = "pause" }
  pipeline_second = { name = "after" }
)");
    Run r(*s.pipeline, "/");
    CHECK(r.out.status == 0); // nothing yet: the filter waits
    CHECK(g_events == std::vector<std::string>{"access:wait"});
    const TestFilter* f = s.paused();
    REQUIRE(f);
    AccessResume* resume = f->paused;
    f->paused = nullptr;
    resume->resume(AccessVerdict::next); // as from a loop callback
    CHECK(r.out.status == 200);
    CHECK(r.out.body == "handler:h");
    CHECK(g_events == std::vector<std::string>{"access:wait", "access:after", "handler:h"});
    // The writer's abort callback belongs to the handler again, not to the pause.
    g_events.clear();
    r.out.abort();
    CHECK(g_events.empty());
}

TEST_CASE("pipeline: a paused filter may resume with an answer of its own") {
    Setup s(R"(
[[site]]
hosts = ["a.test"]
  [[site.route]]
  pipeline_echo = {}
  pipeline_first = { name = "wait", mode = "pause" }
)");
    Run r(*s.pipeline, "/");
    AccessResume* resume = s.paused()->paused;
    ResponseHead head;
    head.status = 429;
    head.content_length = 0;
    r.out.send_headers(head, true);
    resume->resume(AccessVerdict::answered);
    CHECK(r.out.status == 429);
    CHECK(g_events == std::vector<std::string>{"access:wait"}); // the handler never ran
}

TEST_CASE("pipeline: a client that leaves cancels a paused filter, which never resumes") {
    Setup s(R"(
[[site]]
hosts = ["a.test"]
  [[site.route]]
  pipeline_echo = {}
  pipeline_first = { name = "wait", mode = "pause" }
)");
    Run r(*s.pipeline, "/");
    AccessResume* resume = s.paused()->paused;
    REQUIRE(resume);
    r.out.abort(); // the protocol aborts the exchange: the client is gone
    CHECK(g_events == std::vector<std::string>{"access:wait", "cancelled:wait"});
    // A late resume (a filter that missed the cancel) changes nothing.
    resume->resume(AccessVerdict::next);
    CHECK(r.out.status == 0);
    CHECK(g_events.size() == 2);
}

TEST_CASE("pipeline: a resume from inside access() carries on without recursion") {
    Setup s(R"(
[[site]]
hosts = ["a.test"]
  [[site.route]]
  pipeline_echo = { name = "h" }
  pipeline_first = { name = "quick", mode = "resume-inside" }
)");
    Run r(*s.pipeline, "/");
    CHECK(r.out.status == 200);
    CHECK(g_events == std::vector<std::string>{"access:quick", "handler:h"});
}

TEST_CASE("pipeline: body filters wrap nearest the client first; response filters outermost "
          "first") {
    Setup s(R"(
[[site]]
hosts = ["a.test"]
  [[site.route]]
  pipeline_echo = { name = "h" }
  pipeline_first = { name = "one", body = true, wrap = true }
  pipeline_second = { name = "two", body = true, wrap = true }
)");
    Run r(*s.pipeline, "/");
    // The handler reads through "two" (outer) which read through "one" (nearest the client).
    CHECK(r.out.body == "handler:h<two><one>");
    CHECK(g_events == std::vector<std::string>{"access:one", "access:two", "body:one", "body:two",
                                               "wrap:two", "wrap:one", "handler:h"});
}

TEST_CASE("pipeline: the accept phase refuses connections and counts the ones it accepted") {
    Setup s(R"(
[server]
pipeline_first = { name = "count", accept = true }
pipeline_second = { name = "deny", accept = true, mode = "refuse" }
[[site]]
hosts = ["a.test"]
  [[site.route]]
  pipeline_echo = {}
)");
    REQUIRE(s.pipeline->has_accept_filters());
    ConnectionInfo conn;
    AcceptContext refused{conn};
    CHECK_FALSE(s.pipeline->accept(refused));
    CHECK(refused.refusal_status == 503);
    // The filter that accepted before the refusal hears that the connection is gone.
    CHECK(g_events == std::vector<std::string>{"accept:count", "accept:deny", "closed:count"});

    Setup open(R"(
[server]
pipeline_first = { name = "count", accept = true }
[[site]]
hosts = ["a.test"]
  [[site.route]]
  pipeline_echo = {}
)");
    AcceptContext accepted{conn};
    CHECK(open.pipeline->accept(accepted));
    CHECK(accepted.refusal_status == 0);
    open.pipeline->connection_closed(conn);
    CHECK(g_events == std::vector<std::string>{"accept:count", "closed:count"});

    Setup none(R"(
[[site]]
hosts = ["a.test"]
  [[site.route]]
  pipeline_echo = {}
)");
    CHECK_FALSE(none.pipeline->has_accept_filters());
}
