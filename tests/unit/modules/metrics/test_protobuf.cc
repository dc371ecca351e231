// The native histogram buckets and the protobuf exposition made from the text one.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>

#include "modules/metrics/metrics_zone.h"
#include "modules/metrics/protobuf.h"

using namespace wraith::metrics;

namespace {

// The upper bound of a bucket index from native_bucket_index.
double upper(int index) {
    return std::exp2((index + kNativeMinKey) / 8.0);
}

} // namespace

TEST_CASE("native buckets: each duration falls in (2^((k-1)/8), 2^(k/8)] seconds") {
    CHECK(native_bucket_index(0) == -1);
    CHECK(native_bucket_index(1) == 0); // 1 µs: the lowest bucket
    for (uint64_t us : {1ull, 2ull, 3ull, 999ull, 1000ull, 1001ull, 12345ull, 250000ull, 1000000ull,
                        1048576ull, 60000000ull}) {
        const int i = native_bucket_index(us);
        const double s = static_cast<double>(us) * 1e-6;
        INFO(us << " us: bucket " << i);
        CHECK(s <= upper(i) * (1 + 1e-12));
        CHECK(s > upper(i - 1) * (1 - 1e-12));
    }
    // A power of two is its bucket's upper bound (bounds are inclusive).
    CHECK(native_bucket_index(1000000) == -kNativeMinKey); // 1 s: key 0
    // Beyond 2^12 s: the last bucket.
    CHECK(native_bucket_index(uint64_t(1) << 40) == kNativeBuckets - 1);
}

TEST_CASE("make_native: spans of consecutive keys, count deltas") {
    uint64_t counts[10] = {0, 3, 4, 0, 0, 1, 0, 0, 0, 2};
    NativeHistogram h = make_native(counts, 10, -5, 3, 0.5, 7);
    CHECK(h.count == 17);
    CHECK(h.zero_count == 7);
    REQUIRE(h.spans.size() == 3);
    CHECK(h.spans[0].offset == -4); // key -5 + 1
    CHECK(h.spans[0].length == 2);
    CHECK(h.spans[1].offset == 2); // keys -2, -1 empty
    CHECK(h.spans[1].length == 1);
    CHECK(h.spans[2].offset == 3);
    CHECK(h.spans[2].length == 1);
    CHECK(h.deltas == std::vector<int64_t>{3, 1, -3, 1});
}

TEST_CASE("the protobuf exposition: families, types and labels from the text") {
    const std::string text = "# HELP a_total Things.\n# TYPE a_total counter\n"
                             "a_total{x=\"1\",y=\"q\\\"uote\"} 5\n"
                             "# HELP g A gauge.\n# TYPE g gauge\ng 2.5\n"
                             "# HELP h A histogram.\n# TYPE h histogram\n"
                             "h_bucket{p=\"a\",le=\"0.1\"} 1\nh_bucket{p=\"a\",le=\"+Inf\"} 3\n"
                             "h_sum{p=\"a\"} 0.7\nh_count{p=\"a\"} 3\n";
    std::string seen_family, seen_labels;
    const std::string out = text_to_protobuf(text, [&](std::string_view f, std::string_view l) {
        seen_family = f;
        seen_labels = l;
        return nullptr;
    });
    CHECK(seen_family == "h");
    CHECK(seen_labels == "p=\"a\"");
    // Three length-prefixed messages; the first is a_total's, its label value unescaped.
    size_t i = 0;
    int families = 0;
    while (i < out.size()) {
        const size_t n = static_cast<unsigned char>(out[i]);
        REQUIRE(n < 0x80);
        const std::string msg = out.substr(i + 1, n);
        if (families == 0) {
            CHECK(msg.find("a_total") != std::string::npos);
            CHECK(msg.find("q\"uote") != std::string::npos);
        }
        i += 1 + n;
        ++families;
    }
    CHECK(i == out.size());
    CHECK(families == 3);
}

TEST_CASE("accepts_protobuf: the delimited MetricFamily type, with q > 0") {
    CHECK(accepts_protobuf("application/vnd.google.protobuf;proto=io.prometheus.client."
                           "MetricFamily;encoding=delimited;q=0.7,text/plain;q=0.3"));
    CHECK_FALSE(accepts_protobuf("application/vnd.google.protobuf;proto=io.prometheus.client."
                                 "MetricFamily;encoding=delimited;q=0,text/plain"));
    CHECK_FALSE(accepts_protobuf("application/openmetrics-text;version=1.0.0,text/plain"));
    CHECK_FALSE(accepts_protobuf(""));
}
