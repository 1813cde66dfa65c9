/*
 * One 20 ms frame between G.711 and Opus: the step the transcoder's C call
 * (gateway/media/_opusframes.c) and the native relay's transcoding path
 * (gateway/media/_g711relay.c) share.
 *
 * libopus is the one opuslib-next loaded: callers pass the addresses of its functions, of
 * the codec states, of the G.711 tables and of the concealer's history (numpy arrays the
 * transcoder keeps alive). No threads, no allocation.
 */
#ifndef GATEWAY_MEDIA_OPUSSTEP_H
#define GATEWAY_MEDIA_OPUSSTEP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef int32_t (*opus_encode_function)(void *state, const int16_t *pcm, int frame_size,
                                        unsigned char *data, int32_t max_data_bytes);
typedef int (*opus_decode_function)(void *state, const unsigned char *data, int32_t length,
                                    int16_t *pcm, int frame_size, int decode_fec);

#define MAX_PACKET_BYTES 1275 /* sip_bridge.rtp.opus.MAX_PACKET_BYTES */
#define MAX_FRAME 960         /* 20 ms at 48 kHz: the most a frame holds here */

/* One direction's transcoder, as the C step sees it (gateway.media.transcoder.NativeFrame). */
typedef struct {
    void *codec;        /* OpusDecoder's or OpusEncoder's state */
    const void *table;  /* G.711: encode (65536 codes by uint16 sample) or decode (256 int16) */
    float *history;     /* the concealer's history (float32) */
    ptrdiff_t history_length;
    int frame;          /* samples of a 20 ms frame at the PCM rate (= G.711 bytes) */
} opus_step;

/* The concealer's history (float32): shift left by n, append the frame. */
static void keep_history(float *history, ptrdiff_t length, const int16_t *pcm, ptrdiff_t n) {
    if (n >= length) {
        for (ptrdiff_t i = 0; i < length; i++)
            history[i] = (float)pcm[n - length + i];
        return;
    }
    memmove(history, history + n, (size_t)(length - n) * sizeof(float));
    for (ptrdiff_t i = 0; i < n; i++)
        history[length - n + i] = (float)pcm[i];
}

/*
 * Decodes an Opus payload into `pcm` (`capacity` samples). A frame of `step->frame`
 * samples is coded into `codes` (G.711) and appended to the history. Returns the samples
 * decoded, or libopus's negative error; only a whole frame changes anything but the
 * decoder and `pcm`.
 */
static int opus_step_to_g711(const opus_step *step, opus_decode_function decode,
                             const unsigned char *payload, int32_t length, int16_t *pcm,
                             int capacity, unsigned char *codes) {
    int samples = decode(step->codec, payload, length, pcm, capacity, 0);
    if (samples != step->frame)
        return samples;
    const unsigned char *encode_table = (const unsigned char *)step->table;
    for (int i = 0; i < samples; i++)
        codes[i] = encode_table[(uint16_t)pcm[i]];
    keep_history(step->history, step->history_length, pcm, samples);
    return samples;
}

/*
 * `step->frame` G.711 codes -> PCM (kept in the history) -> one Opus packet in `packet`
 * (MAX_PACKET_BYTES). Returns its size, or libopus's negative error with nothing changed.
 */
static int32_t g711_step_to_opus(const opus_step *step, opus_encode_function encode,
                                 const unsigned char *codes, unsigned char *packet) {
    int16_t pcm[MAX_FRAME];
    const int16_t *decode_table = (const int16_t *)step->table;
    for (int i = 0; i < step->frame; i++)
        pcm[i] = decode_table[codes[i]];
    int32_t size = encode(step->codec, pcm, step->frame, packet, MAX_PACKET_BYTES);
    if (size >= 0)
        keep_history(step->history, step->history_length, pcm, step->frame);
    return size;
}

#endif
