#include "modules/metrics/protobuf.h"

#include "common/metrics_text.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

namespace wraith::metrics {

namespace {

// ---- protobuf wire format (proto2: repeated scalars unpacked) ------------------------------

void varint(std::string& out, uint64_t v) {
    while (v >= 0x80) {
        out += static_cast<char>((v & 0x7f) | 0x80);
        v >>= 7;
    }
    out += static_cast<char>(v);
}

void tag(std::string& out, int field, int wire) {
    varint(out, (static_cast<uint64_t>(field) << 3) | static_cast<uint64_t>(wire));
}

void put_varint(std::string& out, int field, uint64_t v) {
    tag(out, field, 0);
    varint(out, v);
}

void put_sint(std::string& out, int field, int64_t v) {
    tag(out, field, 0);
    varint(out, (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
}

void put_double(std::string& out, int field, double d) {
    tag(out, field, 1);
    uint64_t bits;
    std::memcpy(&bits, &d, sizeof bits);
    for (int i = 0; i < 8; ++i)
        out += static_cast<char>((bits >> (8 * i)) & 0xff);
}

void put_bytes(std::string& out, int field, std::string_view s) {
    tag(out, field, 2);
    varint(out, s.size());
    out.append(s);
}

// ---- the text exposition, as render_prometheus() writes it ---------------------------------

struct Label {
    std::string name, value;
};

struct Sample {
    std::string_view name;
    std::vector<Label> labels;
    double value = 0;
};

// `"..."` with \\, \" and \n escapes, from `s[i]` (the opening quote); advances `i` past it.
bool quoted(std::string_view s, size_t& i, std::string& out) {
    if (i >= s.size() || s[i] != '"')
        return false;
    for (++i; i < s.size(); ++i) {
        char c = s[i];
        if (c == '"') {
            ++i;
            return true;
        }
        if (c == '\\' && i + 1 < s.size()) {
            c = s[++i];
            out += c == 'n' ? '\n' : c;
        } else {
            out += c;
        }
    }
    return false;
}

double number(std::string_view s) {
    if (s == "+Inf" || s == "Inf")
        return HUGE_VAL;
    if (s == "-Inf")
        return -HUGE_VAL;
    if (s == "NaN")
        return std::nan("");
    std::string copy(s);
    return std::strtod(copy.c_str(), nullptr);
}

bool parse_sample(std::string_view line, Sample& s) {
    size_t i = line.find_first_of("{ ");
    if (i == std::string_view::npos || i == 0)
        return false;
    s.name = line.substr(0, i);
    s.labels.clear();
    if (line[i] == '{') {
        ++i;
        while (i < line.size() && line[i] != '}') {
            size_t eq = line.find('=', i);
            if (eq == std::string_view::npos)
                return false;
            Label l;
            l.name = std::string(line.substr(i, eq - i));
            i = eq + 1;
            if (!quoted(line, i, l.value))
                return false;
            s.labels.push_back(std::move(l));
            if (i < line.size() && line[i] == ',')
                ++i;
        }
        if (i >= line.size())
            return false;
        ++i; // '}'
    }
    while (i < line.size() && line[i] == ' ')
        ++i;
    size_t end = line.find(' ', i);
    std::string_view v = line.substr(i, end == std::string_view::npos ? line.npos : end - i);
    if (v.empty())
        return false;
    s.value = number(v);
    return true;
}

// `a="x",b="y"`: labels as the text writes them (the key native() is asked with).
std::string label_text(const std::vector<Label>& labels) {
    std::string out;
    for (const Label& l : labels) {
        if (!out.empty())
            out += ',';
        out += l.name;
        out += "=\"";
        metric_label_value(out, l.value);
        out += '"';
    }
    return out;
}

void put_labels(std::string& metric, const std::vector<Label>& labels) {
    for (const Label& l : labels) {
        std::string pair;
        put_bytes(pair, 1, l.name);
        put_bytes(pair, 2, l.value);
        put_bytes(metric, 1, pair);
    }
}

// MetricType: COUNTER 0, GAUGE 1, SUMMARY 2, UNTYPED 3, HISTOGRAM 4.
int type_code(std::string_view type) {
    if (type == "counter")
        return 0;
    if (type == "gauge")
        return 1;
    if (type == "summary")
        return 2;
    if (type == "histogram")
        return 4;
    return 3;
}

struct Histogram {
    std::vector<Label> labels;                      // without le
    std::string key;                                // label_text(labels)
    std::vector<std::pair<double, double>> buckets; // upper bound, cumulative count
    double sum = 0, count = 0;
};

class Converter {
public:
    explicit Converter(const NativeFor& native) : native_(native) {}

    void line(std::string_view l) {
        if (l.starts_with("# HELP ") || l.starts_with("# TYPE ")) {
            std::string_view rest = l.substr(7);
            size_t sp = rest.find(' ');
            std::string_view name = rest.substr(0, sp);
            std::string_view text = sp == std::string_view::npos ? "" : rest.substr(sp + 1);
            if (name != name_)
                start(name);
            if (l[2] == 'H')
                help_ = unescape_help(text);
            else
                type_ = std::string(text);
            return;
        }
        if (l.empty() || l[0] == '#')
            return;
        Sample s;
        if (!parse_sample(l, s))
            return; // not ours to judge: the text renderer is tested on its own
        if (type_ == "histogram" && s.name.starts_with(name_)) {
            std::string_view suffix = s.name.substr(name_.size());
            if (suffix == "_bucket" || suffix == "_sum" || suffix == "_count") {
                histogram_sample(suffix, s);
                return;
            }
        }
        if (s.name != name_) {
            start(s.name); // a sample without # TYPE: untyped, a family of its own
            type_.clear();
        }
        std::string metric;
        put_labels(metric, s.labels);
        std::string value;
        put_double(value, 1, s.value);
        const int code = type_code(type_);
        put_bytes(metric, code == 0 ? 3 : code == 1 ? 2 : 5, value);
        metrics_.push_back(std::move(metric));
    }

    std::string finish() {
        flush();
        return std::move(out_);
    }

private:
    static std::string unescape_help(std::string_view text) {
        std::string out;
        for (size_t i = 0; i < text.size(); ++i) {
            if (text[i] == '\\' && i + 1 < text.size()) {
                ++i;
                out += text[i] == 'n' ? '\n' : text[i];
            } else {
                out += text[i];
            }
        }
        return out;
    }

    void start(std::string_view name) {
        flush();
        name_ = std::string(name);
        help_.clear();
        type_.clear();
    }

    void histogram_sample(std::string_view suffix, Sample& s) {
        double le = 0;
        bool has_le = false;
        for (auto it = s.labels.begin(); it != s.labels.end(); ++it)
            if (it->name == "le") {
                le = number(it->value);
                has_le = true;
                s.labels.erase(it);
                break;
            }
        std::string key = label_text(s.labels);
        Histogram* h = nullptr;
        for (Histogram& x : histograms_)
            if (x.key == key)
                h = &x;
        if (!h) {
            histograms_.push_back({s.labels, key, {}, 0, 0});
            h = &histograms_.back();
        }
        if (suffix == "_bucket" && has_le)
            h->buckets.emplace_back(le, s.value);
        else if (suffix == "_sum")
            h->sum = s.value;
        else if (suffix == "_count")
            h->count = s.value;
    }

    void encode_histogram(const Histogram& h) {
        const NativeHistogram* n = native_ ? native_(name_, h.key) : nullptr;
        std::string body;
        put_varint(body, 1, n ? n->count : static_cast<uint64_t>(h.count));
        put_double(body, 2, h.sum);
        for (const auto& [bound, cumulative] : h.buckets) {
            if (std::isinf(bound))
                continue; // implied by the count
            std::string bucket;
            put_varint(bucket, 1, static_cast<uint64_t>(cumulative));
            put_double(bucket, 2, bound);
            put_bytes(body, 3, bucket);
        }
        if (n) {
            put_sint(body, 5, n->schema);
            put_double(body, 6, n->zero_threshold);
            put_varint(body, 7, n->zero_count);
            for (const NativeHistogram::Span& sp : n->spans) {
                std::string span;
                put_sint(span, 1, sp.offset);
                put_varint(span, 2, sp.length);
                put_bytes(body, 12, span);
            }
            for (int64_t d : n->deltas)
                put_sint(body, 13, d);
        }
        std::string metric;
        put_labels(metric, h.labels);
        put_bytes(metric, 7, body);
        metrics_.push_back(std::move(metric));
    }

    void flush() {
        for (const Histogram& h : histograms_)
            encode_histogram(h);
        histograms_.clear();
        if (!name_.empty() && !metrics_.empty()) {
            std::string family;
            put_bytes(family, 1, name_);
            if (!help_.empty())
                put_bytes(family, 2, help_);
            put_varint(family, 3, static_cast<uint64_t>(type_code(type_)));
            for (const std::string& m : metrics_)
                put_bytes(family, 4, m);
            varint(out_, family.size());
            out_ += family;
        }
        metrics_.clear();
    }

    const NativeFor& native_;
    std::string name_, help_, type_;
    std::vector<std::string> metrics_;
    std::vector<Histogram> histograms_;
    std::string out_;
};

} // namespace

bool accepts_protobuf(std::string_view accept) {
    while (!accept.empty()) {
        size_t comma = accept.find(',');
        std::string_view element = accept.substr(0, comma);
        accept = comma == std::string_view::npos ? std::string_view{} : accept.substr(comma + 1);
        if (element.find("application/vnd.google.protobuf") == std::string_view::npos ||
            element.find("proto=io.prometheus.client.MetricFamily") == std::string_view::npos ||
            element.find("encoding=delimited") == std::string_view::npos)
            continue;
        size_t q = element.find(";q=");
        if (q == std::string_view::npos)
            q = element.find("; q=");
        if (q != std::string_view::npos) {
            std::string_view v = element.substr(element.find('=', q) + 1);
            while (!v.empty() && (v.back() == ' ' || v.back() == '\t'))
                v.remove_suffix(1);
            if (number(v) <= 0)
                continue;
        }
        return true;
    }
    return false;
}

NativeHistogram make_native(const uint64_t* counts, int n, int first_key, int32_t schema,
                            double zero_threshold, uint64_t zero_count) {
    NativeHistogram h;
    h.schema = schema;
    h.zero_threshold = zero_threshold;
    h.zero_count = zero_count;
    h.count = zero_count;
    int last_key = 0; // the key of the last bucket put in a span
    bool any = false;
    int64_t previous = 0; // the last count put, for the deltas
    for (int i = 0; i < n; ++i) {
        if (!counts[i])
            continue;
        const int key = first_key + i;
        if (any && key == last_key + 1) {
            ++h.spans.back().length;
        } else {
            // Gaps of one or two empty buckets could ride in a span as zero deltas; a new span
            // is as small, and simpler.
            h.spans.push_back({any ? key - last_key - 1 : key, 1});
        }
        h.deltas.push_back(static_cast<int64_t>(counts[i]) - previous);
        previous = static_cast<int64_t>(counts[i]);
        h.count += counts[i];
        last_key = key;
        any = true;
    }
    return h;
}

std::string text_to_protobuf(std::string_view text, const NativeFor& native) {
    Converter c(native);
    while (!text.empty()) {
        size_t nl = text.find('\n');
        c.line(text.substr(0, nl));
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    }
    return c.finish();
}

} // namespace wraith::metrics
