/*
 * The public AV_FRAME_DATA_MOTION_VECTORS grid (flags2 +export_mvs) of the patched VVC decoder against its
 * AV_FRAME_DATA_CODING_PRIOR motion (export_prior=mvs), per 4x4 block and list. Built and run by
 * tests/test_export_mvs.py: export_mvs_check BITSTREAM.266 THREADS; prints "frames F blocks B used U
 * mismatches M" and exits 1 on any mismatch.
 */
#include <stdio.h>
#include <stdlib.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/coding_prior.h>
#include <libavutil/motion_vector.h>
#include <libavutil/opt.h>

#define MV_FLAG_IBC (1 << 9)   /* VVC_EXPORT_MV_FLAG_IBC of vvc_patches/0002 */

static long check_frame(const AVFrame *frame, long *blocks, long *used)
{
    const AVFrameSideData *a = av_frame_get_side_data(frame, AV_FRAME_DATA_MOTION_VECTORS);
    const AVFrameSideData *b = av_frame_get_side_data(frame, AV_FRAME_DATA_CODING_PRIOR);
    const AVCodingPrior *p;
    const AVCodingPriorMotionTile *tiles;
    const AVMotionVector *m;
    long bad = 0;

    if (!a || !b)
        return 1;
    p     = (const AVCodingPrior *)b->data;
    m     = (const AVMotionVector *)a->data;
    tiles = (const AVCodingPriorMotionTile *)(b->data + p->mv_offset);
    if (p->version != AV_CODING_PRIOR_VERSION || p->flags != AV_CODING_PRIOR_HAS_MVS || p->nb_planes ||
        a->size != 2L * p->mv_width * p->mv_height * sizeof(*m))
        return 1;
    for (int l = 0; l < 2; l++)
        for (int y = 0; y < p->mv_height; y++)
            for (int x = 0; x < p->mv_width; x++, m++) {
                const AVCodingPriorMotionTile *t = &tiles[(y >> 2) * AV_CODING_PRIOR_TILES(p->mv_width) + (x >> 2)];
                const int16_t *mv = t->mv[l][y & 3][x & 3];
                const int u = m->w && !(m->flags & MV_FLAG_IBC);
                *used += u;
                bad += (u ? m->source : 0) != t->ref[l][y & 3][x & 3] || (u ? m->motion_x : 0) != mv[0] ||
                       (u ? m->motion_y : 0) != mv[1] || (u && m->motion_scale != 16);
            }
    *blocks += 2L * p->mv_width * p->mv_height;
    return bad;
}

int main(int argc, char **argv)
{
    AVFormatContext *fmt = NULL;
    const AVCodec *codec;
    AVCodecContext *dec;
    AVPacket *pkt = av_packet_alloc();
    AVFrame *frame = av_frame_alloc();
    long blocks = 0, used = 0, bad = 0;
    int frames = 0, stream, ret;

    if (argc != 3 || avformat_open_input(&fmt, argv[1], av_find_input_format("vvc"), NULL) < 0)
        return 2;
    stream = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    dec = avcodec_alloc_context3(codec);
    avcodec_parameters_to_context(dec, fmt->streams[stream]->codecpar);
    dec->flags2 |= AV_CODEC_FLAG2_EXPORT_MVS;
    dec->thread_count = atoi(argv[2]);
    if (av_opt_set(dec->priv_data, "export_prior", "mvs", 0) < 0 || avcodec_open2(dec, codec, NULL) < 0)
        return 2;
    for (int eof = 0;;) {
        if (!eof) {
            if (av_read_frame(fmt, pkt) < 0) {
                eof = 1;
                avcodec_send_packet(dec, NULL);
            } else {
                avcodec_send_packet(dec, pkt);
                av_packet_unref(pkt);
            }
        }
        while ((ret = avcodec_receive_frame(dec, frame)) >= 0) {
            bad += check_frame(frame, &blocks, &used);
            frames++;
            av_frame_unref(frame);
        }
        if (ret == AVERROR_EOF)
            break;
    }
    printf("frames %d blocks %ld used %ld mismatches %ld\n", frames, blocks, used, bad);
    av_frame_free(&frame);
    av_packet_free(&pkt);
    avcodec_free_context(&dec);
    avformat_close_input(&fmt);
    return bad != 0;
}
