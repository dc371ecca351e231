#include "modules/compress/encoder.h"

#include <brotli/encode.h>
#include <zlib.h>
#include <zstd.h>

#include "common/arena.h"

namespace wraith {

namespace {

// gzip: zlib deflate with the gzip wrapper (windowBits 16 + n).
class GzipEncoder final : public Encoder {
public:
    bool init(const EncoderParams& p) {
        // A smaller window and hash table for small known bodies, as they cannot use more:
        // saves most of deflate's ~256 KiB state on typical pages. zlib's minimum useful window
        // with the gzip wrapper is 2^9.
        int wbits = 15;
        int mem_level = 8;
        if (p.size_hint > 0) {
            while (wbits > 9 && p.size_hint < (int64_t(1) << (wbits - 1))) {
                --wbits;
                if (mem_level > 2)
                    --mem_level;
            }
        }
        ok_ = deflateInit2(&z_, p.level, Z_DEFLATED, 16 + wbits, mem_level, Z_DEFAULT_STRATEGY) ==
              Z_OK;
        return ok_;
    }
    ~GzipEncoder() override {
        if (ok_)
            deflateEnd(&z_);
    }
    Status run(const uint8_t*& in, size_t& in_len, uint8_t*& out, size_t& out_len,
               bool finish) override {
        // zlib counts in uInt; feed at most 1 GiB per call.
        constexpr size_t max_step = size_t(1) << 30;
        uInt in_step = uInt(in_len < max_step ? in_len : max_step);
        uInt out_step = uInt(out_len < max_step ? out_len : max_step);
        z_.next_in = const_cast<Bytef*>(in);
        z_.avail_in = in_step;
        z_.next_out = out;
        z_.avail_out = out_step;
        int rc = deflate(&z_, finish && in_step == in_len ? Z_FINISH : Z_NO_FLUSH);
        in += in_step - z_.avail_in;
        in_len -= in_step - z_.avail_in;
        out += out_step - z_.avail_out;
        out_len -= out_step - z_.avail_out;
        if (rc == Z_STREAM_END)
            return Status::done;
        if (rc == Z_OK || rc == Z_BUF_ERROR) // Z_BUF_ERROR: no progress possible, not fatal
            return Status::more;
        return Status::error;
    }

private:
    z_stream z_{};
    bool ok_ = false;
};

class BrotliEncoder final : public Encoder {
public:
    bool init(const EncoderParams& p) {
        state_ = BrotliEncoderCreateInstance(nullptr, nullptr, nullptr);
        if (!state_)
            return false;
        BrotliEncoderSetParameter(state_, BROTLI_PARAM_QUALITY, uint32_t(p.level));
        // A 512 KiB window: on-the-fly bodies gain little from brotli's 4 MiB default, and the
        // ring buffer is per response.
        BrotliEncoderSetParameter(state_, BROTLI_PARAM_LGWIN, 19);
        if (p.size_hint > 0) {
            uint64_t hint = uint64_t(p.size_hint);
            BrotliEncoderSetParameter(state_, BROTLI_PARAM_SIZE_HINT,
                                      uint32_t(hint < (1u << 30) ? hint : (1u << 30)));
        }
        if (p.font)
            BrotliEncoderSetParameter(state_, BROTLI_PARAM_MODE, BROTLI_MODE_FONT);
        else if (p.text)
            BrotliEncoderSetParameter(state_, BROTLI_PARAM_MODE, BROTLI_MODE_TEXT);
        return true;
    }
    ~BrotliEncoder() override {
        if (state_)
            BrotliEncoderDestroyInstance(state_);
    }
    Status run(const uint8_t*& in, size_t& in_len, uint8_t*& out, size_t& out_len,
               bool finish) override {
        BrotliEncoderOperation op = finish ? BROTLI_OPERATION_FINISH : BROTLI_OPERATION_PROCESS;
        if (!BrotliEncoderCompressStream(state_, op, &in_len, &in, &out_len, &out, nullptr))
            return Status::error;
        if (finish && BrotliEncoderIsFinished(state_))
            return Status::done;
        return Status::more;
    }

private:
    BrotliEncoderState* state_ = nullptr;
};

class ZstdEncoder final : public Encoder {
public:
    bool init(const EncoderParams& p) {
        cctx_ = ZSTD_createCCtx();
        if (!cctx_)
            return false;
        if (ZSTD_isError(ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, p.level)))
            return false;
        // Levels 1..19 keep the window within the 8 MiB HTTP decoders must accept
        // (RFC 8878 §3.1.1). A known small body needs no more window than its size, and every
        // level's default is at least 2^19, so shrinking below that only saves memory.
        if (p.size_hint > 0 && p.size_hint < (int64_t(1) << 19)) {
            int wlog = 10; // ZSTD_WINDOWLOG_MIN
            while ((int64_t(1) << wlog) < p.size_hint)
                ++wlog;
            if (ZSTD_isError(ZSTD_CCtx_setParameter(cctx_, ZSTD_c_windowLog, wlog)))
                return false;
        }
        return true;
    }
    ~ZstdEncoder() override {
        if (cctx_)
            ZSTD_freeCCtx(cctx_);
    }
    Status run(const uint8_t*& in, size_t& in_len, uint8_t*& out, size_t& out_len,
               bool finish) override {
        ZSTD_inBuffer ib{in, in_len, 0};
        ZSTD_outBuffer ob{out, out_len, 0};
        size_t rc = ZSTD_compressStream2(cctx_, &ob, &ib, finish ? ZSTD_e_end : ZSTD_e_continue);
        in += ib.pos;
        in_len -= ib.pos;
        out += ob.pos;
        out_len -= ob.pos;
        if (ZSTD_isError(rc))
            return Status::error;
        // With ZSTD_e_end, 0 means every input byte went in and the frame is complete.
        if (finish && rc == 0 && in_len == 0)
            return Status::done;
        return Status::more;
    }

private:
    ZSTD_CCtx* cctx_ = nullptr;
};

template <class T> Encoder* construct(Arena& arena, const EncoderParams& params) {
    T* e = arena.make<T>();
    return e->init(params) ? e : nullptr;
}

} // namespace

std::optional<Coding> coding_from(std::string_view name) {
    if (name == "gzip")
        return Coding::gzip;
    if (name == "br")
        return Coding::br;
    if (name == "zstd")
        return Coding::zstd;
    return std::nullopt;
}

std::string_view coding_name(Coding c) {
    switch (c) {
    case Coding::gzip:
        return "gzip";
    case Coding::br:
        return "br";
    case Coding::zstd:
        return "zstd";
    }
    return {};
}

Encoder* make_encoder(Arena& arena, Coding coding, const EncoderParams& params) {
    switch (coding) {
    case Coding::gzip:
        return construct<GzipEncoder>(arena, params);
    case Coding::br:
        return construct<BrotliEncoder>(arena, params);
    case Coding::zstd:
        return construct<ZstdEncoder>(arena, params);
    }
    return nullptr;
}

} // namespace wraith
