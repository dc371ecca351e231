#include "modules/proxy/upstream_trace.h"

#include "modules/proxy/health.h"
#include "modules/proxy/upstream_config.h"

namespace wraith::proxy {

void UpstreamTrace::begin(Request& req, UpstreamMetrics& metrics, const UpstreamConfig& up) {
    metrics_ = &metrics;
    up_ = &up;
    slots_ = &metrics.slots(up);
    start_us_ = monotonic_us();
    report_ = req.arena->make<UpstreamReport>();
    report_->upstream = up.name; // the config outlives the request
    req.upstream = report_;
}

uint64_t UpstreamTrace::since_start() const {
    return monotonic_us() - start_us_;
}

void UpstreamTrace::start_try(size_t server) {
    if (!metrics_)
        return;
    end_try();
    if (report_->tries > 0)
        metrics_->count_retry(slots_->upstream);
    ++report_->tries;
    report_->address = up_->servers[server].address;
    report_->status = 0;
    report_->connect_us = report_->header_us = report_->response_us = -1;
    report_->failure = nullptr;
    server_slot_ = server < slots_->servers.size() ? slots_->servers[server] : -1;
    try_start_us_ = monotonic_us();
    in_try_ = true;
    try_failed_ = false;
    metrics_->enter(server_slot_);
}

void UpstreamTrace::connected(bool fresh) {
    if (!in_try_)
        return;
    const uint64_t now = monotonic_us();
    report_->connect_us = static_cast<int64_t>(now - start_us_);
    if (fresh)
        metrics_->observe_connect(slots_->upstream, now - try_start_us_);
}

void UpstreamTrace::response_head(int status) {
    if (!in_try_)
        return;
    const uint64_t now = monotonic_us();
    report_->status = status;
    report_->header_us = static_cast<int64_t>(now - start_us_);
    metrics_->observe_header(slots_->upstream, now - try_start_us_);
}

void UpstreamTrace::failed(Failure kind) {
    if (!in_try_ || try_failed_)
        return;
    try_failed_ = true;
    report_->failure = failure_name(kind);
    metrics_->count_failure(server_slot_, kind);
}

void UpstreamTrace::response_end() {
    if (in_try_)
        report_->response_us = static_cast<int64_t>(since_start());
}

void UpstreamTrace::finish() {
    end_try();
}

void UpstreamTrace::end_try() {
    if (!in_try_)
        return;
    in_try_ = false;
    metrics_->count_request(server_slot_, report_->status);
    metrics_->leave(server_slot_);
}

void UpstreamTrace::hand_over(UpstreamTrace& to) {
    to = *this;
    metrics_ = nullptr;
    in_try_ = false;
}

} // namespace wraith::proxy
