/*
 * prior-dump: decode a raw VVC, HEVC or H.264 bitstream with FFmpeg's native decoder (patched by
 * cpgd-bench's vvc_patches/) and stream, per output frame in display order, the decoded YUV planes, the
 * motion-vector grid and the residual planes, as the decoder exports them in AV_FRAME_DATA_CODING_PRIOR
 * (libavutil/coding_prior.h; decoder option export_prior=mvs+residual[+prediction]).
 *
 * Usage: prior-dump [options] INPUT
 *   INPUT          the bitstream; "-" reads it from stdin as it is written (e.g. piped from the encoder)
 *   --codec C      vvc, hevc or h264 (default: from INPUT's extension: .266/.vvc, .265/.hevc, .264/.h264;
 *                  else vvc)
 *   -o FILE        write records to FILE ("-" = stdout; default)
 *   --name NAME    the name error messages give the input (default: INPUT)
 *   --threads N    decoder threads (0 = auto, default)
 *   --slice-threads  the threads share the slices (HEVC: WPP rows) of one picture instead of decoding
 *                  pictures in parallel (H.264, HEVC; the VVC decoder schedules its own tasks)
 *   --no-export    decode pixels only (no MVs, no residuals): the plain-decode baseline
 *   --prediction   also write the prediction each residual was added to (test aid)
 *   --rgb          write the picture as 8-bit RGB (the conversion of cpgd_bench/codec/colour.py, bit
 *                  for bit) instead of the Y, Cb, Cr planes
 *   --md5          print "<index> <md5>" per frame of the cropped planes (as ffmpeg -f framemd5)
 *   --null         decode (with or without export) and write nothing: for timing
 *
 * Record format (little-endian; parsed by cpgd_bench/codec/records.py), the same for every codec:
 *   file header : "CPGDVVC1" (8 bytes; the name is historical)
 *   per frame   : "FRME", uint32 payload_bytes, then the payload:
 *     int32 poc, uint8 slice_type (0 B, 1 P, 2 I), int8 qp, uint8 bit_depth, uint8 flags
 *       (bit 0 LMCS used, bit 1 MVs present, bit 2 residuals present, bit 3 prediction present,
 *        bit 4 picture as RGB),
 *     uint16 width, uint16 height (cropped picture), uint16 coded_width, uint16 coded_height,
 *     then arrays, C order:
 *     Y, Cb, Cr           uint16  (height, width), (ceil(h/2), ceil(w/2)) x 2     [cropped picture]
 *       or RGB            uint8   (height, width, 3)                             [if bit 4]
 *     mv                  int16   (2, H4, W4, 2)  1/16 pel, (x, y), list 0 and 1  [if bit 1]
 *     mv_ref              int16   (2, H4, W4)     reference POC - current POC, 0 = no MV
 *     res Y, Cb, Cr       int16   coded size (coded_height, coded_width), half for chroma [if bit 2]
 *     pred Y, Cb, Cr      uint16  as res; 0xFFFF where no residual was added         [if bit 3]
 *   with H4 = ceil(coded_height / 4), W4 = ceil(coded_width / 4). IBC vectors are not motion between
 *   pictures and are written as "no MV". The values are the AVCodingPrior's, same element types: the tool
 *   writes pred straight from the side data, untiles the motion tiles into mv and mv_ref, and expands the
 *   residual, which the decoder gives as a list of coded blocks, into the planes.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/md5.h>
#include <libavutil/opt.h>
#ifndef PRIOR_DUMP_NO_EXPORT
#include <libavutil/coding_prior.h>
#endif

/* A codec the tool decodes: its name (--codec, FFmpeg's demuxer and decoder), how messages name it and
 * the file extensions that select it. */
typedef struct Codec {
    const char *name, *label, *ext[2];
} Codec;

static const Codec codecs[] = {
    { "vvc",  "VVC",   { ".266", ".vvc" } },
    { "hevc", "HEVC",  { ".265", ".hevc" } },
    { "h264", "H.264", { ".264", ".h264" } },
};

typedef struct Options {
    const char *input, *output, *name;
    const Codec *codec;
    int threads, slice_threads, export, prediction, md5, null, rgb;
} Options;

/* Scratch buffers reused from frame to frame. */
typedef struct Buffers {
    uint16_t *row;       /* one picture row, widened to 16 bits */
    uint8_t *rgb;        /* RGB picture (--rgb) */
    float *chroma;       /* one vertically interpolated Cb and Cr row (--rgb) */
    size_t row_cap, rgb_cap, chroma_cap;
#ifndef PRIOR_DUMP_NO_EXPORT
    int16_t *res[3];     /* residual planes expanded from a block list */
    int res_w[3], res_h[3];
    AVCodingPriorBlock *written;  /* the blocks expanded into them (cleared before the next frame) */
    size_t nb_written, written_cap;
    int16_t *motion;     /* mv then ref, untiled */
    size_t motion_cap;
#endif
} Buffers;

static const char *input_name;

/* Exit with `code` after one line: "prior-dump: INPUT: message". */
static void __attribute__((format(printf, 2, 3))) die(int code, const char *fmt, ...)
{
    va_list args;
    fprintf(stderr, "prior-dump: %s: ", input_name ? input_name : "-");
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fputc('\n', stderr);
    exit(code);
}

static void put(FILE *f, const void *p, size_t n)
{
    if (n && fwrite(p, 1, n, f) != n)
        die(4, "write failed: %s", strerror(errno));
}

static int plane_dims(const AVFrame *f, int c, int *w, int *h)
{
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(f->format);
    *w = c ? AV_CEIL_RSHIFT(f->width,  d->log2_chroma_w) : f->width;
    *h = c ? AV_CEIL_RSHIFT(f->height, d->log2_chroma_h) : f->height;
    return d->comp[0].depth;
}

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return p;
    p = realloc(p, need * elem);
    if (!p)
        die(4, "%s", "out of memory");
    *cap = need;
    return p;
}

static void write_planes(FILE *f, const AVFrame *frame, Buffers *b)
{
    for (int c = 0; c < 3; c++) {
        int w, h;
        const int depth = plane_dims(frame, c, &w, &h);
        b->row = grow(b->row, &b->row_cap, w, sizeof(*b->row));
        for (int y = 0; y < h; y++) {
            const uint8_t *src = frame->data[c] + (ptrdiff_t)y * frame->linesize[c];
            if (depth > 8) {   /* already 16-bit little-endian: written as it is */
                put(f, src, w * sizeof(uint16_t));
                continue;
            }
            for (int x = 0; x < w; x++)
                b->row[x] = src[x];
            put(f, b->row, w * sizeof(uint16_t));
        }
    }
}

/*
 * The inverse colour conversion of cpgd_bench/codec/colour.py (BT.709, limited range, centre-sited
 * 4:2:0 chroma upsampled bilinearly with weights 3/4, 1/4 and edge replication), written as the same
 * float32 operations in the same order as its numpy code, so both give the same bytes (built with
 * -ffp-contract=off; tests/test_codec.py compares them on every frame).
 */
#define KR 0.2126
#define KB 0.0722
#define KG (1.0 - KR - KB)
#define CB_SCALE (2.0 * (1.0 - KB))
#define CR_SCALE (2.0 * (1.0 - KR))

/* Row r of an upsampled chroma plane, `w` samples: vertically 3/4 of the nearest chroma row and 1/4 of
 * the next one away from it, then horizontally the same, the offset taken off first (as colour.py).
 * `tmp` holds 3 * ceil(w / 2) floats. Simple loops, so that the compiler vectorises them. */
static void chroma_row(const AVFrame *f, int c, int r, int w, float c_off, float *tmp, float *out)
{
    const int cw = (w + 1) / 2, ch = (f->height + 1) / 2;
    const int near = r >> 1, far = av_clip(near + ((r & 1) ? 1 : -1), 0, ch - 1);
    const uint16_t *a = (const uint16_t *)(f->data[c] + (ptrdiff_t)near * f->linesize[c]);
    const uint16_t *b = (const uint16_t *)(f->data[c] + (ptrdiff_t)far * f->linesize[c]);
    float *vert = tmp, *even = tmp + cw, *odd = tmp + 2 * cw;
    for (int j = 0; j < cw; j++)
        vert[j] = 0.75f * ((float)a[j] - c_off) + 0.25f * ((float)b[j] - c_off);
    even[0] = 0.75f * vert[0] + 0.25f * vert[0];
    for (int j = 1; j < cw; j++)
        even[j] = 0.75f * vert[j] + 0.25f * vert[j - 1];
    for (int j = 0; j < cw - 1; j++)
        odd[j] = 0.75f * vert[j] + 0.25f * vert[j + 1];
    odd[cw - 1] = 0.75f * vert[cw - 1] + 0.25f * vert[cw - 1];
    for (int j = 0; j < w / 2; j++) {
        out[2 * j]     = even[j];
        out[2 * j + 1] = odd[j];
    }
    if (w & 1)
        out[w - 1] = even[cw - 1];
}

static inline uint8_t to_byte(float v)
{
    v = v < 0.5f ? 0.5f : v;            /* the forms that compile to maxss / minss */
    v = v > 255.5f ? 255.5f : v;
    return (uint8_t)(int)v;
}

static void write_rgb(FILE *f, const AVFrame *frame, Buffers *b)
{
    const int w = frame->width, h = frame->height, cw = (w + 1) / 2;
    const int depth = av_pix_fmt_desc_get(frame->format)->comp[0].depth;
    const double s = (double)(1 << (depth - 8));
    const float y_off = (float)(16.0 * s), y_scale = (float)(255.0 / (219.0 * s));
    const float c_off = (float)(128.0 * s), scale = (float)(255.0 / (224.0 * s));
    const float k_r_cr = (float)CR_SCALE * scale, k_b_cb = (float)CB_SCALE * scale;
    const float k_g_cb = (float)(-KB * CB_SCALE / KG) * scale, k_g_cr = (float)(-KR * CR_SCALE / KG) * scale;
    float *u, *v, *tmp;
    uint8_t *planar;
    if (depth <= 8)
        die(3, "%s", "--rgb needs a high-bit-depth stream (cpgd-bench codes 10-bit)");
    b->rgb = grow(b->rgb, &b->rgb_cap, (size_t)w * (h + 1) * 3, 1);    /* + one planar R, G, B row */
    b->chroma = grow(b->chroma, &b->chroma_cap, 2 * (size_t)w + 3 * (size_t)cw, sizeof(float));
    u = b->chroma;
    v = u + w;
    tmp = v + w;
    planar = b->rgb + (size_t)w * h * 3;
    for (int y = 0; y < h; y++) {
        const uint16_t *luma = (const uint16_t *)(frame->data[0] + (ptrdiff_t)y * frame->linesize[0]);
        uint8_t *out = b->rgb + (size_t)y * w * 3, *r8 = planar, *g8 = planar + w, *b8 = planar + 2 * w;
        chroma_row(frame, 1, y, w, c_off, tmp, u);
        chroma_row(frame, 2, y, w, c_off, tmp, v);
        for (int x = 0; x < w; x++) {
            const float l = ((float)luma[x] - y_off) * y_scale + 0.5f;
            r8[x] = to_byte(l + k_r_cr * v[x]);
            g8[x] = to_byte((l + k_g_cb * u[x]) + k_g_cr * v[x]);
            b8[x] = to_byte(l + k_b_cb * u[x]);
        }
        for (int x = 0; x < w; x++) {
            out[3 * x]     = r8[x];
            out[3 * x + 1] = g8[x];
            out[3 * x + 2] = b8[x];
        }
    }
    put(f, b->rgb, (size_t)w * h * 3);
}

static void print_md5(const AVFrame *frame, int index)
{
    uint8_t digest[16];
    const int size = av_image_get_buffer_size(frame->format, frame->width, frame->height, 1);
    uint8_t *buf = av_malloc(size);
    if (!buf)
        die(4, "%s", "out of memory");
    av_image_copy_to_buffer(buf, size, (const uint8_t *const *)frame->data, frame->linesize,
                            frame->format, frame->width, frame->height, 1);
    av_md5_sum(digest, buf, size);
    av_free(buf);
    printf("%d ", index);
    for (int i = 0; i < 16; i++)
        printf("%02x", digest[i]);
    printf("\n");
}

#ifndef PRIOR_DUMP_NO_EXPORT
/* The coding-prior side data of a frame, checked against what the record needs; dies if it is missing or
 * does not hold the arrays of `o` at sizes that fit the side data. */
static const AVCodingPrior *get_prior(const AVFrame *frame, const Options *o)
{
    const AVFrameSideData *sd = av_frame_get_side_data(frame, AV_FRAME_DATA_CODING_PRIOR);
    const AVCodingPrior *p;
    const int need = AV_CODING_PRIOR_HAS_MVS | AV_CODING_PRIOR_HAS_RESIDUAL |
                     (o->prediction ? AV_CODING_PRIOR_HAS_PREDICTION : 0);
    uint64_t tiles;

    if (!sd)
        die(3, "no coding-prior side data on a %s frame (decoder not patched? run: make codec)", o->codec->label);
    p = (const AVCodingPrior *)sd->data;
    if (sd->size < sizeof(*p) || p->version != AV_CODING_PRIOR_VERSION || (p->flags & need) != need ||
        p->nb_planes != 3 || p->mv_width <= 0 || p->mv_height <= 0)
        die(3, "unsupported or incomplete %s coding-prior side data (need version %d, MVs and residuals, "
            "4:2:0, a fully decoded picture)", o->codec->label, AV_CODING_PRIOR_VERSION);
    tiles = (uint64_t)AV_CODING_PRIOR_TILES(p->mv_width) * AV_CODING_PRIOR_TILES(p->mv_height);
    if ((uint64_t)p->mv_offset + tiles * sizeof(AVCodingPriorMotionTile) > sd->size)
        die(3, "%s coding-prior side data smaller than its MV grid", o->codec->label);
    if ((uint64_t)p->blocks_offset + p->blocks_size > sd->size)
        die(3, "%s coding-prior side data smaller than its residual block list", o->codec->label);
    for (int c = 0; c < 3; c++) {
        const uint64_t plane = 2 * ((uint64_t)p->linesize[c] * (p->height[c] - 1) + p->width[c]);
        if (p->width[c] <= 0 || p->height[c] <= 0 || p->linesize[c] < p->width[c] ||
            (o->prediction && (uint64_t)p->pred_offset[c] + plane > sd->size))
            die(3, "%s coding-prior side data smaller than its planes", o->codec->label);
    }
    return p;
}

/* The motion of a prior in the record's layout, from its tiles: mv int16 [2][H4][W4][2], then ref int16 [2][H4][W4]. */
static const int16_t *untile_motion(const AVCodingPrior *p, Buffers *b)
{
    const AVCodingPriorMotionTile *tiles = (const AVCodingPriorMotionTile *)((const uint8_t *)p + p->mv_offset);
    const int w4 = p->mv_width, h4 = p->mv_height, tiles_w = AV_CODING_PRIOR_TILES(w4);
    const size_t n4 = (size_t)w4 * h4;
    int16_t *mv, *ref;

    b->motion = grow(b->motion, &b->motion_cap, 6 * n4, sizeof(int16_t));
    mv  = b->motion;
    ref = mv + 4 * n4;
    for (int l = 0; l < 2; l++)
        for (int y = 0; y < h4; y++)
            for (int x = 0; x < w4; x += 4) {
                const AVCodingPriorMotionTile *t = &tiles[(size_t)(y >> 2) * tiles_w + (x >> 2)];
                const int n = w4 - x < 4 ? w4 - x : 4;
                const size_t i = ((size_t)l * h4 + y) * w4 + x;
                memcpy(mv + 2 * i, t->mv[l][y & 3], n * sizeof(t->mv[l][0][0]));
                memcpy(ref + i, t->ref[l][y & 3], n * sizeof(t->ref[l][0][0]));
            }
    return b->motion;
}

/* The residual planes of a prior, expanded from its block list into b->res: zero planes (of the last frame's,
 * only the blocks it wrote are cleared), then the blocks in list order. Dies on a block that does not fit its
 * plane or the list. */
static void expand_blocks(const AVCodingPrior *p, Buffers *b, const Codec *codec)
{
    const uint8_t *list = (const uint8_t *)p + p->blocks_offset;

    for (int c = 0; c < 3; c++) {
        if (b->res[c] && b->res_w[c] == p->width[c] && b->res_h[c] == p->height[c])
            continue;
        free(b->res[c]);
        b->res[c] = calloc((size_t)p->width[c] * p->height[c], sizeof(int16_t));
        if (!b->res[c])
            die(4, "%s", "out of memory");
        b->res_w[c]   = p->width[c];
        b->res_h[c]   = p->height[c];
        b->nb_written = 0;   /* new planes are zero */
    }
    for (size_t i = 0; i < b->nb_written; i++) {
        const AVCodingPriorBlock *k = &b->written[i];
        for (int y = 0; y < k->h; y++)
            memset(b->res[k->plane] + (size_t)(k->y + y) * b->res_w[k->plane] + k->x, 0, k->w * sizeof(int16_t));
    }
    b->nb_written = 0;
    for (size_t at = 0; at < p->blocks_size;) {
        AVCodingPriorBlock k;
        size_t n;
        if (p->blocks_size - at < sizeof(k))
            die(3, "%s residual block list: a block header past its end", codec->label);
        memcpy(&k, list + at, sizeof(k));
        n = AV_CODING_PRIOR_BLOCK_SIZE(k.w, k.h);
        if (k.plane >= 3 || !k.w || !k.h || k.x + k.w > p->width[k.plane] || k.y + k.h > p->height[k.plane] ||
            n > p->blocks_size - at)
            die(3, "%s residual block list: a block outside its plane or the list", codec->label);
        for (int y = 0; y < k.h; y++)
            memcpy(b->res[k.plane] + (size_t)(k.y + y) * p->width[k.plane] + k.x,
                   list + at + sizeof(k) + (size_t)y * k.w * sizeof(int16_t), k.w * sizeof(int16_t));
        if (b->nb_written == b->written_cap) {
            b->written_cap = b->written_cap ? 2 * b->written_cap : 4096;
            b->written = realloc(b->written, b->written_cap * sizeof(*b->written));
            if (!b->written)
                die(4, "%s", "out of memory");
        }
        b->written[b->nb_written++] = k;
        at += n;
    }
}

/* The prediction planes of a prior: one write per plane when its rows are contiguous. */
static void write_prediction(FILE *f, const AVCodingPrior *p)
{
    for (int c = 0; c < p->nb_planes; c++) {
        const uint8_t *base = (const uint8_t *)p + p->pred_offset[c];
        const size_t row = (size_t)p->width[c] * sizeof(int16_t);
        if (p->linesize[c] == p->width[c])
            put(f, base, row * p->height[c]);
        else
            for (int y = 0; y < p->height[c]; y++)
                put(f, base + (size_t)y * p->linesize[c] * sizeof(int16_t), row);
    }
}
#endif

static void write_frame(FILE *f, const AVFrame *frame, const Options *o, Buffers *b)
{
    int32_t poc = 0;
    uint8_t slice_type = 255, bit_depth, flags = 0;
    int8_t qp = 0;
    uint16_t dims[4];
    int w, h;
    size_t payload;
    int coded_w = frame->width, coded_h = frame->height;
#ifndef PRIOR_DUMP_NO_EXPORT
    const AVCodingPrior *p = o->export ? get_prior(frame, o) : NULL;
    size_t mv_bytes = 0;
#endif

    bit_depth = plane_dims(frame, 0, &w, &h);
    payload = 4 + 4 + sizeof(dims);   /* poc, type/qp/depth/flags, dims */
    if (o->rgb) {
        flags |= 16;
        payload += (size_t)w * h * 3;
    } else {
        for (int c = 0; c < 3; c++) {
            plane_dims(frame, c, &w, &h);
            payload += (size_t)w * h * 2;
        }
    }
#ifndef PRIOR_DUMP_NO_EXPORT
    if (p) {
        const int pred = o->prediction ? AV_CODING_PRIOR_HAS_PREDICTION : 0;
        poc        = p->poc;
        slice_type = p->slice_type;
        qp         = p->slice_qp;
        coded_w    = p->width[0];
        coded_h    = p->height[0];
        /* the record's flag bits 0-3 are the prior's */
        flags     |= p->flags & (AV_CODING_PRIOR_LMCS | AV_CODING_PRIOR_HAS_MVS | AV_CODING_PRIOR_HAS_RESIDUAL | pred);
        for (int c = 0; c < 3; c++)
            payload += (size_t)p->width[c] * p->height[c] * 2 * (pred ? 2 : 1);
        mv_bytes = (size_t)p->mv_width * p->mv_height * 2 * sizeof(int16_t);
        payload += 3 * mv_bytes;
    }
#endif
    put(f, "FRME", 4);
    {
        const uint32_t n = payload;
        put(f, &n, 4);
    }
    put(f, &poc, 4);
    put(f, &slice_type, 1);
    put(f, &qp, 1);
    put(f, &bit_depth, 1);
    put(f, &flags, 1);
    dims[0] = frame->width; dims[1] = frame->height; dims[2] = coded_w; dims[3] = coded_h;
    put(f, dims, sizeof(dims));
    if (o->rgb)
        write_rgb(f, frame, b);
    else
        write_planes(f, frame, b);
#ifndef PRIOR_DUMP_NO_EXPORT
    if (p) {
        put(f, untile_motion(p, b), 3 * mv_bytes);
        expand_blocks(p, b, o->codec);
        for (int c = 0; c < 3; c++)
            put(f, b->res[c], (size_t)p->width[c] * p->height[c] * sizeof(int16_t));
        if (o->prediction)
            write_prediction(f, p);
    }
#endif
}

static const Codec *codec_by_extension(const char *path)
{
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof(codecs) / sizeof(codecs[0]); i++)
        for (int j = 0; j < 2; j++)
            if (!strcasecmp(dot, codecs[i].ext[j]))
                return &codecs[i];
    return &codecs[0];
}

static void parse_args(int argc, char **argv, Options *o)
{
    memset(o, 0, sizeof(*o));
    o->output = "-";
    o->export = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc)
            o->output = argv[++i];
        else if (!strcmp(argv[i], "--name") && i + 1 < argc)
            o->name = argv[++i];
        else if (!strcmp(argv[i], "--codec") && i + 1 < argc) {
            const char *name = argv[++i];
            for (size_t c = 0; c < sizeof(codecs) / sizeof(codecs[0]); c++)
                if (!strcmp(name, codecs[c].name))
                    o->codec = &codecs[c];
            if (!o->codec) {
                fprintf(stderr, "prior-dump: unknown codec '%s' (vvc, hevc or h264)\n", name);
                exit(2);
            }
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            o->threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--slice-threads"))
            o->slice_threads = 1;
        else if (!strcmp(argv[i], "--no-export"))
            o->export = 0;
        else if (!strcmp(argv[i], "--prediction"))
            o->prediction = 1;
        else if (!strcmp(argv[i], "--md5"))
            o->md5 = 1;
        else if (!strcmp(argv[i], "--null"))
            o->null = 1;
        else if (!strcmp(argv[i], "--rgb"))
            o->rgb = 1;
        else if ((argv[i][0] != '-' || !strcmp(argv[i], "-")) && !o->input)
            o->input = argv[i];
        else {
            fprintf(stderr, "usage: prior-dump [--codec vvc|hevc|h264] [-o FILE] [--name NAME] [--threads N] [--slice-threads] "
                            "[--no-export] [--prediction] [--rgb] [--md5] [--null] INPUT\n");
            exit(2);
        }
    }
    if (!o->input) {
        fprintf(stderr, "prior-dump: no input file given\n");
        exit(2);
    }
    if (!o->codec)
        o->codec = codec_by_extension(o->name ? o->name : o->input);
#ifdef PRIOR_DUMP_NO_EXPORT
    o->export = 0;
#endif
}

int main(int argc, char **argv)
{
    Options o;
    AVFormatContext *fmt = NULL;
    AVCodecContext *dec = NULL;
    const AVCodec *codec;
    AVPacket *pkt;
    AVFrame *frame;
    FILE *out = NULL;
    Buffers buffers = {0};
    int ret, stream, index = 0;
    char err[AV_ERROR_MAX_STRING_SIZE];

    parse_args(argc, argv, &o);
    input_name = o.name ? o.name : o.input;
    av_log_set_level(AV_LOG_ERROR);

    /* stdin through the file protocol: FFmpeg reads a pipe sequentially, as the encoder writes it */
    if ((ret = avformat_open_input(&fmt, strcmp(o.input, "-") ? o.input : "/dev/stdin",
                                   av_find_input_format(o.codec->name), NULL)) < 0)
        die(2, "cannot open: %s", av_make_error_string(err, sizeof(err), ret));
    /* no avformat_find_stream_info(): the raw demuxer knows the codec, the decoder reads the SPS, and
     * probing would decode the first pictures twice */
    stream = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (stream < 0 || !codec)
        die(3, "no %s video stream found", o.codec->label);

    dec = avcodec_alloc_context3(codec);
    avcodec_parameters_to_context(dec, fmt->streams[stream]->codecpar);
    dec->thread_count    = o.threads;
    if (o.slice_threads)
        dec->thread_type = FF_THREAD_SLICE;
    dec->err_recognition = AV_EF_EXPLODE | AV_EF_CRCCHECK | AV_EF_BITSTREAM;
    if (o.export && (!dec->priv_data ||
                     av_opt_set(dec->priv_data, "export_prior", o.prediction ? "mvs+residual+prediction" : "mvs+residual",
                                0) < 0))
        die(3, "this FFmpeg build cannot export %s coding priors (decoder not patched: run make codec)", o.codec->label);
    if ((ret = avcodec_open2(dec, codec, NULL)) < 0)
        die(3, "cannot open the %s decoder: %s", o.codec->label, av_make_error_string(err, sizeof(err), ret));

    if (!o.md5 && !o.null) {
        out = strcmp(o.output, "-") ? fopen(o.output, "wb") : stdout;
        if (!out || setvbuf(out, NULL, _IOFBF, 1 << 20))   /* 1 MiB writes: records are megabytes */
            die(2, "cannot write output: %s", strerror(errno));
        put(out, "CPGDVVC1", 8);
    }

    pkt   = av_packet_alloc();
    frame = av_frame_alloc();
    for (int flushing = 0;;) {
        if (!flushing) {
            ret = av_read_frame(fmt, pkt);
            if (ret == AVERROR_EOF) {
                flushing = 1;
                ret = avcodec_send_packet(dec, NULL);
            } else if (ret < 0) {
                die(3, "truncated or unreadable %s bitstream: %s", o.codec->label,
                    av_make_error_string(err, sizeof(err), ret));
            } else {
                if (pkt->stream_index == stream)
                    ret = avcodec_send_packet(dec, pkt);
                av_packet_unref(pkt);
            }
            if (ret < 0 && ret != AVERROR(EAGAIN))
                die(3, "corrupt %s bitstream: %s", o.codec->label, av_make_error_string(err, sizeof(err), ret));
        }
        while ((ret = avcodec_receive_frame(dec, frame)) >= 0) {
            if (frame->decode_error_flags || (frame->flags & AV_FRAME_FLAG_CORRUPT))
                die(3, "corrupt %s bitstream: decoder flagged a damaged frame", o.codec->label);
            if (o.md5)
                print_md5(frame, index);
            else if (out)
                write_frame(out, frame, &o, &buffers);
            index++;
            av_frame_unref(frame);
        }
        if (ret == AVERROR_EOF)
            break;
        if (ret != AVERROR(EAGAIN))
            die(3, "corrupt %s bitstream: %s", o.codec->label, av_make_error_string(err, sizeof(err), ret));
    }
    if (!index)
        die(3, "no frames decoded (empty or not a %s bitstream)", o.codec->label);
    if (out && fflush(out))
        die(4, "write failed: %s", strerror(errno));
    if (out && out != stdout)
        fclose(out);
    fprintf(stderr, "prior-dump: %s: %d frames\n", o.input, index);

    free(buffers.row);
    free(buffers.rgb);
    free(buffers.chroma);
#ifndef PRIOR_DUMP_NO_EXPORT
    for (int c = 0; c < 3; c++)
        free(buffers.res[c]);
    free(buffers.written);
    free(buffers.motion);
#endif
    av_frame_free(&frame);
    av_packet_free(&pkt);
    avcodec_free_context(&dec);
    avformat_close_input(&fmt);
    return 0;
}
