// The protocol-independent path of one request: route → access filters → response filters
// around the handler → log. Protocol adapters (worker/http1, later http2/http3) call these two
// functions and nothing else of the module machinery.
#pragma once

#include "common/http.h"
#include "modules/module.h"

namespace wraith {

class Worker;

// Starts an exchange whose head is complete. Every outcome, including errors, is a response
// through `out`; the handler may finish it later from loop callbacks.
void run_exchange(Worker& worker, Request& req, BodyReader& body, ResponseWriter& out);

// The exchange ended (response complete, or aborted): log phase and access log.
void finish_exchange(Worker& worker, const Request& req, const ExchangeSummary& summary);

} // namespace wraith
