// The Prometheus protobuf exposition (io.prometheus.client.MetricFamily, varint-delimited):
// what a Prometheus started with --enable-feature=native-histograms asks for first, and the
// only format Prometheus 2.42 reads native histograms from. It is made from the text
// exposition render_prometheus() writes (format 0.0.4: every family's # HELP and # TYPE, then
// its samples), so every module's series come along without a second renderer; histograms
// that have one gain their native (sparse exponential) buckets.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace wraith::metrics {

constexpr std::string_view kProtobufContentType =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; "
    "encoding=delimited";

// Whether an Accept field asks for the delimited MetricFamily protobuf (with q > 0).
bool accepts_protobuf(std::string_view accept);

// A native histogram's buckets: spans of consecutive keys and the deltas of their counts (the
// first count, then each count minus the one before), as the protobuf carries them.
struct NativeHistogram {
    int32_t schema = 3;
    double zero_threshold = 0;
    uint64_t zero_count = 0;
    uint64_t count = 0; // zero_count plus every bucket's
    struct Span {
        int32_t offset; // the first span: its first key; later ones: the gap since the last
        uint32_t length;
    };
    std::vector<Span> spans;
    std::vector<int64_t> deltas;
};

// From per-key counts: counts[i] is key first_key + i's.
NativeHistogram make_native(const uint64_t* counts, int n, int first_key, int32_t schema,
                            double zero_threshold, uint64_t zero_count);

// The native histogram to add to a histogram family's metric (its labels as the text has
// them, without "le", e.g. `protocol="h1"`), or null.
using NativeFor =
    std::function<const NativeHistogram*(std::string_view family, std::string_view labels)>;

// Converts `text` (format 0.0.4) into delimited MetricFamily messages.
std::string text_to_protobuf(std::string_view text, const NativeFor& native = {});

} // namespace wraith::metrics
