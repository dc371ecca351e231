// Routing micro-benchmark for bench/routing.sh: loads a config, then times site selection and
// route resolution (Router::site_for + normalize_path + Router::resolve, what the pipeline runs
// per request) over a list of requests, many times. Prints nanoseconds per request.
//
//   route_bench CONFIG REQUESTS [ITERATIONS]
//
// REQUESTS: one "HOST PATH [HEADER: VALUE]" per line.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/path.h"
#include "modules/modules.h"
#include "modules/router/router.h"

using namespace wraith;

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: route_bench CONFIG REQUESTS [ITERATIONS]\n");
        return 2;
    }
    register_builtin_modules();
    Diagnostics diag;
    auto config = load_config(argv[1], diag);
    if (!config) {
        for (const auto& d : diag.list())
            std::fprintf(stderr, "%s\n", d.text().c_str());
        return 1;
    }
    struct Line {
        std::string host, path, header, value;
    };
    std::vector<Line> lines;
    std::ifstream in(argv[2]);
    for (std::string l; std::getline(in, l);) {
        Line x;
        size_t sp = l.find(' ');
        if (sp == std::string::npos)
            continue;
        x.host = l.substr(0, sp);
        std::string rest = l.substr(sp + 1);
        size_t sp2 = rest.find(' ');
        x.path = rest.substr(0, sp2);
        if (sp2 != std::string::npos) {
            std::string h = rest.substr(sp2 + 1);
            size_t colon = h.find(':');
            x.header = h.substr(0, colon);
            x.value = h.substr(colon + 2);
        }
        lines.push_back(x);
    }
    long iterations = argc > 3 ? std::atol(argv[3]) : 200;
    Router router(*config);
    Arena arena;
    size_t routed = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (long it = 0; it < iterations; ++it) {
        for (const Line& l : lines) {
            Request req;
            req.arena = &arena;
            req.host = l.host;
            req.path = l.path;
            if (!l.header.empty())
                req.headers.add(l.header, l.value);
            const Site* site = router.site_for(req.host);
            std::string error;
            if (site && normalize_path(req.path, arena, req.decoded_path) &&
                Router::resolve(*site, req, error) && req.route)
                ++routed;
            arena.reset();
        }
    }
    auto ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0);
    double per = ns.count() / (static_cast<double>(iterations) * lines.size());
    std::printf("%.1f ns/request (%zu requests x %ld, %zu routed)\n", per, lines.size(), iterations,
                routed / iterations);
    return 0;
}
