/* The load generator's media path in C: what bench/load/browser_media.py does per packet,
 * without a Python step per packet.
 *
 * Compiled at bench time with `cc` (bench/load/native.py) and loaded with cffi in ABI mode.
 * It runs inside the generator's asyncio event loop, never beside it: the loop's selector
 * (native.NativeSelector) calls ne_select() instead of epoll_wait(), and while it waits for
 * the loop's next timer or socket, ne_select() sends every call's frames when they are due
 * (each call on its own clock: its phase, its jitter; a timeout with nanosecond resolution,
 * epoll_pwait2) and reads the calls' sockets: RTP (the echo) is unprotected and measured
 * here, anything else (STUN, DTLS, RTCP) is kept for Python, whose reader for that socket
 * then takes it. One thread: libsrtp sessions are never used from two at once.
 *
 * SRTP is pylibsrtp's own libsrtp: its srtp_protect/srtp_unprotect are passed in as function
 * pointers, with the sessions aiortc made. Likewise libopus's opus_decode, the one
 * opuslib-next loaded (sip_bridge.rtp.opus.libopus_addresses), for Opus calls: each has
 * its own decoder state, made in Python; G.711 is decoded with the u-law table given.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUFFER 1500
#define BATCH 32
#define STASH 16
#define LATE_AT 50
#define FREQUENCY_FRAMES_MAX 64
#define PCM_MAX 5760 /* 120 ms at 48 kHz: the longest an Opus packet decodes to */
#define FRAME_SETS 4
#define FRAME 0.020

typedef int (*srtp_fn)(void *session, void *buffer, int *length);
typedef int (*opus_decode_fn)(void *decoder, const uint8_t *data, int32_t length, int16_t *pcm,
                              int frame_size, int decode_fec);

/* One period of pre-encoded frames (Opus calls: fullband or narrowband, by the answer). */
struct frames {
    uint8_t *data;
    int *lengths;
    uint8_t *levels;
    int count, stride;
};

struct stashed {
    int length;
    struct sockaddr_in from;
    uint8_t data[BUFFER];
};

struct call {
    int fd;
    int sending;
    struct sockaddr_in remote;
    void *tx, *rx;
    /* sending */
    uint8_t tx_buffer[BUFFER + 64];
    int header_size, level_at, abs_at, twcc_at, payload_type;
    const struct frames *frames;
    uint16_t sequence, transport_sequence;
    uint32_t timestamp0, ticks;
    int64_t k;
    double due, send_at, jitter;
    uint64_t random;
    int64_t packets_sent, octets, frames_sent, sent_in_window;
    double last_onset_sent; /* NAN: none yet */
    /* receiving: RFC 3550 A.1 counts for the receiver reports */
    int64_t received, cycles;
    int has_base;
    uint32_t remote_ssrc;
    int base_sequence, max_sequence;
    /* the echo's measurements (bench/load/visitor.py on_packet) */
    void *decoder; /* Opus: libopus's decoder state; NULL: G.711 (u-law) */
    int rate;      /* of the decoded PCM */
    int analyse, has_first_ts, previous_quiet, collect, frequency_count;
    uint32_t first_ts;
    double *arrivals;
    int64_t *indexes;
    size_t arrivals_count, arrivals_capacity;
    double *rtt;
    size_t rtt_count, rtt_capacity;
    int16_t *frequency; /* FREQUENCY_FRAMES_MAX frames of PCM, frequency_size samples apart */
    int *frequency_lengths;
    int frequency_size, frequency_frames;
    /* the far end's last SR, for our receiver reports' LSR and DLSR */
    int has_lsr;
    uint32_t lsr_ssrc, lsr;
    double lsr_time; /* CLOCK_REALTIME, as aiortc's time.time() */
    /* datagrams that are neither RTP nor RTCP, for Python (a few a second) */
    struct stashed *stash; /* STASH of them, apart: the call's hot fields stay close */
    int stash_head, stash_count, reported;
    int index;
};

struct engine {
    srtp_fn protect, unprotect, unprotect_rtcp;
    opus_decode_fn opus_decode;
    int16_t decode[256];
    int quiet, onset;
    double window_start, window_end, late_threshold;
    int64_t sends, late;
    double max_late;
    double late_at[LATE_AT * 2];
    int late_at_count;
    struct frames frame_sets[FRAME_SETS];
    int16_t pcm[PCM_MAX]; /* the echo, decoded */
    struct call **calls; /* the calls sending or reading, in no order */
    double *send_at;     /* calls[i]'s next send, side by side: scanned at every wake-up */
    int call_count, call_capacity;
    int unreported; /* calls whose kept datagrams Python has not been told of */
    struct call **by_fd;
    int by_fd_size;
    uint8_t rx[BATCH][BUFFER];
    struct mmsghdr messages[BATCH];
    struct iovec vectors[BATCH];
    struct sockaddr_in sources[BATCH];
};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double uniform(struct call *c) { /* xorshift64*: [0, 1) */
    uint64_t x = c->random;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    c->random = x;
    return (double)((x * 0x2545F4914F6CDD1DULL) >> 11) * (1.0 / 9007199254740992.0);
}

static int in_window(struct engine *e, double t) { return e->window_start <= t && t <= e->window_end; }

static int grow(void **array, size_t *capacity, size_t size) {
    size_t wanted = *capacity ? *capacity * 2 : 256;
    void *bigger = realloc(*array, wanted * size);
    if (bigger == NULL) return -1;
    *array = bigger;
    *capacity = wanted;
    return 0;
}

struct engine *ne_new(uintptr_t protect, uintptr_t unprotect, uintptr_t unprotect_rtcp,
                      uintptr_t opus_decode, const int16_t *decode, int quiet, int onset,
                      double late_threshold) {
    struct engine *e = calloc(1, sizeof *e);
    if (e == NULL) return NULL;
    e->protect = (srtp_fn)protect;
    e->unprotect = (srtp_fn)unprotect;
    e->unprotect_rtcp = (srtp_fn)unprotect_rtcp;
    e->opus_decode = (opus_decode_fn)opus_decode;
    memcpy(e->decode, decode, sizeof e->decode);
    e->quiet = quiet;
    e->onset = onset;
    e->late_threshold = late_threshold;
    e->window_start = e->window_end = INFINITY;
    for (int i = 0; i < BATCH; i++) {
        e->vectors[i].iov_base = e->rx[i];
        e->vectors[i].iov_len = BUFFER;
        e->messages[i].msg_hdr.msg_iov = &e->vectors[i];
        e->messages[i].msg_hdr.msg_iovlen = 1;
        e->messages[i].msg_hdr.msg_name = &e->sources[i];
        e->messages[i].msg_hdr.msg_namelen = sizeof e->sources[i];
    }
    return e;
}

/* Frame set `set` (0..FRAME_SETS-1): `count` frames, `stride` bytes apart. */
int ne_set_frames(struct engine *e, int set, const uint8_t *frames, const int *lengths,
                  const uint8_t *levels, int count, int stride) {
    if (set < 0 || set >= FRAME_SETS || count <= 0 || e->frame_sets[set].count) return -1;
    struct frames *f = &e->frame_sets[set];
    f->data = malloc((size_t)count * stride);
    f->lengths = malloc(sizeof(int) * count);
    f->levels = malloc(count);
    if (!f->data || !f->lengths || !f->levels) {
        free(f->data);
        free(f->lengths);
        free(f->levels);
        memset(f, 0, sizeof *f);
        return -1;
    }
    memcpy(f->data, frames, (size_t)count * stride);
    memcpy(f->lengths, lengths, sizeof(int) * count);
    memcpy(f->levels, levels, count);
    f->count = count;
    f->stride = stride;
    return 0;
}

void ne_set_window(struct engine *e, double start, double end) {
    e->window_start = start;
    e->window_end = end;
}

static int map_fd(struct engine *e, int fd, struct call *c) {
    if (fd >= e->by_fd_size) {
        int size = fd * 2 + 64;
        struct call **bigger = realloc(e->by_fd, sizeof *bigger * size);
        if (bigger == NULL) return -1;
        memset(bigger + e->by_fd_size, 0, sizeof *bigger * (size - e->by_fd_size));
        e->by_fd = bigger;
        e->by_fd_size = size;
    }
    e->by_fd[fd] = c;
    return 0;
}

/* A call sending frame set `frame_set`; `decoder`: its echo's Opus decoder state (NULL:
 * G.711), decoding to `rate`; `frequency_size`: the samples of PCM kept per frame at most. */
struct call *ne_add_call(struct engine *e, int index, int fd, uint32_t address, uint16_t port,
                         void *tx, void *rx, const uint8_t *header, int header_size, int level_at,
                         int abs_at, int twcc_at, int payload_type, uint16_t sequence,
                         uint32_t timestamp0, uint16_t transport_sequence, uint32_t ticks,
                         double first_due, double jitter, uint64_t seed, int frame_set,
                         void *decoder, int rate, int analyse, int frequency_size) {
    if (header_size > 64 || fd < 0 || frame_set < 0 || frame_set >= FRAME_SETS) return NULL;
    if (e->frame_sets[frame_set].count == 0 || ticks == 0 || rate <= 0) return NULL;
    if (frequency_size <= 0 || frequency_size > PCM_MAX) return NULL;
    if (decoder != NULL && e->opus_decode == NULL) return NULL;
    if (e->call_count == e->call_capacity) {
        int capacity = e->call_capacity ? e->call_capacity * 2 : 64;
        struct call **bigger = realloc(e->calls, sizeof *bigger * capacity);
        if (bigger == NULL) return NULL;
        e->calls = bigger;
        double *times = realloc(e->send_at, sizeof *times * capacity);
        if (times == NULL) return NULL;
        e->send_at = times;
        e->call_capacity = capacity;
    }
    struct call *c = calloc(1, sizeof *c);
    if (c == NULL) return NULL;
    c->frequency = calloc(FREQUENCY_FRAMES_MAX, sizeof(int16_t) * frequency_size);
    c->frequency_lengths = calloc(FREQUENCY_FRAMES_MAX, sizeof(int));
    c->stash = calloc(STASH, sizeof *c->stash);
    if (c->frequency == NULL || c->frequency_lengths == NULL || c->stash == NULL ||
        map_fd(e, fd, c) != 0) {
        free(c->frequency);
        free(c->frequency_lengths);
        free(c->stash);
        free(c);
        return NULL;
    }
    c->index = index;
    c->fd = fd;
    c->remote.sin_family = AF_INET;
    c->remote.sin_addr.s_addr = address; /* network order */
    c->remote.sin_port = port;           /* network order */
    c->tx = tx;
    c->rx = rx;
    memcpy(c->tx_buffer, header, header_size);
    c->header_size = header_size;
    c->level_at = level_at;
    c->abs_at = abs_at;
    c->twcc_at = twcc_at;
    c->payload_type = payload_type;
    c->frames = &e->frame_sets[frame_set];
    c->decoder = decoder;
    c->rate = rate;
    c->sequence = sequence;
    c->timestamp0 = timestamp0;
    c->transport_sequence = transport_sequence;
    c->ticks = ticks;
    c->random = seed ? seed : 0x9E3779B97F4A7C15ULL;
    c->jitter = jitter;
    c->due = first_due;
    c->send_at = first_due + uniform(c) * jitter;
    c->last_onset_sent = NAN;
    c->analyse = analyse;
    c->frequency_size = frequency_size;
    c->sending = 1;
    e->send_at[e->call_count] = c->send_at;
    e->calls[e->call_count++] = c;
    return c;
}

/* The call sends and reads no more (its sessions are about to go): its fd is Python's
 * again. Its measurements stay readable until ne_free_call. */
void ne_stop_call(struct engine *e, struct call *c) {
    c->sending = 0;
    if (c->fd >= 0 && c->fd < e->by_fd_size && e->by_fd[c->fd] == c) e->by_fd[c->fd] = NULL;
    for (int i = 0; i < e->call_count; i++) {
        if (e->calls[i] == c) {
            e->call_count--;
            e->calls[i] = e->calls[e->call_count];
            e->send_at[i] = e->send_at[e->call_count];
            break;
        }
    }
}

void ne_free_call(struct call *c) {
    free(c->arrivals);
    free(c->indexes);
    free(c->rtt);
    free(c->frequency);
    free(c->frequency_lengths);
    free(c->stash);
    free(c);
}

/* Python's selector no longer watches this fd (its socket is closing): forget it. */
void ne_forget_fd(struct engine *e, int fd) {
    if (fd >= 0 && fd < e->by_fd_size && e->by_fd[fd] != NULL) ne_stop_call(e, e->by_fd[fd]);
}

/* ------------------------------------------------------------------ sending */

static void note_lateness(struct engine *e, double t, double late) {
    if (!in_window(e, t)) return;
    e->sends++;
    if (late > e->late_threshold) {
        e->late++;
        if (e->late_at_count < LATE_AT) {
            e->late_at[2 * e->late_at_count] = t;
            e->late_at[2 * e->late_at_count + 1] = late;
            e->late_at_count++;
        }
    }
    if (late > e->max_late) e->max_late = late;
}

static void send_frame(struct engine *e, struct call *c, double t) {
    int64_t k = c->k;
    note_lateness(e, t, t - c->due);
    const struct frames *frames = c->frames;
    int position = (int)(k % frames->count);
    const uint8_t *payload = frames->data + (size_t)position * frames->stride;
    int size = frames->lengths[position];
    uint8_t *b = c->tx_buffer;
    int end = c->header_size + size;
    if (end <= BUFFER - 16) {
        b[1] = (uint8_t)((k == 0 ? 0x80 : 0) | c->payload_type);
        uint32_t timestamp = c->timestamp0 + (uint32_t)k * c->ticks;
        b[2] = c->sequence >> 8;
        b[3] = c->sequence & 0xFF;
        b[4] = timestamp >> 24;
        b[5] = (timestamp >> 16) & 0xFF;
        b[6] = (timestamp >> 8) & 0xFF;
        b[7] = timestamp & 0xFF;
        if (c->level_at >= 0) b[c->level_at] = frames->levels[position];
        if (c->abs_at >= 0) { /* abs-send-time: 24-bit 6.18 fixed point seconds */
            uint32_t value = (uint32_t)(int64_t)(now() * (1 << 18)) & 0xFFFFFF;
            b[c->abs_at] = value >> 16;
            b[c->abs_at + 1] = (value >> 8) & 0xFF;
            b[c->abs_at + 2] = value & 0xFF;
        }
        if (c->twcc_at >= 0) {
            b[c->twcc_at] = c->transport_sequence >> 8;
            b[c->twcc_at + 1] = c->transport_sequence & 0xFF;
            c->transport_sequence++;
        }
        memcpy(b + c->header_size, payload, size);
        int length = end;
        if (e->protect(c->tx, b, &length) == 0) {
            sendto(c->fd, b, length, MSG_DONTWAIT, (struct sockaddr *)&c->remote, sizeof c->remote);
            c->sequence++;
            c->packets_sent++;
            c->octets += size;
        }
    }
    /* bench/load/visitor.py on_sent */
    c->frames_sent = k + 1;
    if (k % frames->count == 0) c->last_onset_sent = t;
    if (in_window(e, t)) c->sent_in_window++;
    c->k = k + 1;
    c->due += FRAME;
    c->send_at = c->due + uniform(c) * c->jitter;
}

/* Sends every frame due by now; the time of the next one. */
static double send_due(struct engine *e) {
    double next = INFINITY;
    double t = now();
    double *send_at = e->send_at;
    for (int i = 0; i < e->call_count; i++) {
        if (send_at[i] <= t) {
            struct call *c = e->calls[i];
            while (c->send_at <= t) {
                send_frame(e, c, t);
                t = now();
            }
            send_at[i] = c->send_at;
        }
        if (send_at[i] < next) next = send_at[i];
    }
    return next;
}

/* ------------------------------------------------------------------ receiving */

static void count(struct call *c, int sequence, uint32_t ssrc) {
    c->received++;
    if (!c->has_base || ssrc != c->remote_ssrc) {
        c->remote_ssrc = ssrc;
        c->has_base = 1;
        c->base_sequence = c->max_sequence = sequence;
        c->cycles = 0;
        return;
    }
    int delta = (sequence - c->max_sequence) & 0xFFFF;
    if (0 < delta && delta < 0x8000) {
        if (sequence < c->max_sequence) c->cycles += 0x10000;
        c->max_sequence = sequence;
    }
}

static int append_arrival(struct call *c, double value, int64_t index) {
    if (c->arrivals_count == c->arrivals_capacity) {
        size_t capacity = c->arrivals_capacity;
        if (grow((void **)&c->arrivals, &capacity, sizeof(double)) != 0) return -1;
        capacity = c->arrivals_capacity;
        if (grow((void **)&c->indexes, &capacity, sizeof(int64_t)) != 0) return -1;
        c->arrivals_capacity = capacity;
    }
    c->arrivals[c->arrivals_count] = value;
    c->indexes[c->arrivals_count++] = index;
    return 0;
}

/* bench/load/visitor.py on_packet / on_echo: the payload decoded (Opus with the call's
 * decoder, every packet as the Python path does; G.711 by the table), then measured. */
static void measure(struct engine *e, struct call *c, const uint8_t *payload, int size,
                    uint32_t timestamp, double t) {
    if (!c->has_first_ts) {
        c->has_first_ts = 1;
        c->first_ts = timestamp;
    }
    int64_t index = (int64_t)((timestamp - c->first_ts) & 0xFFFFFFFFu) / c->ticks;
    int inside = in_window(e, t);
    if (inside) append_arrival(c, t - (double)index * FRAME, index);
    if (!c->analyse || size <= 0) return;
    int16_t *pcm = e->pcm;
    int samples;
    if (c->decoder != NULL) {
        samples = e->opus_decode(c->decoder, payload, size, pcm, PCM_MAX, 0);
        if (samples <= 0) return; /* not decoded: counts as arrived, not heard */
    } else {
        samples = size < PCM_MAX ? size : PCM_MAX;
        for (int i = 0; i < samples; i++) pcm[i] = e->decode[payload[i]];
    }
    int peak = 0;
    for (int i = 0; i < samples; i++) {
        int m = abs((int)pcm[i]);
        if (m > peak) peak = m;
    }
    if (c->collect) {
        if (c->frequency_count < FREQUENCY_FRAMES_MAX) {
            int n = samples < c->frequency_size ? samples : c->frequency_size;
            memcpy(c->frequency + (size_t)c->frequency_count * c->frequency_size, pcm,
                   sizeof(int16_t) * n);
            c->frequency_lengths[c->frequency_count++] = n;
        }
        c->collect--;
    }
    if (c->previous_quiet && peak > e->onset) {
        int first = 0;
        while (first < samples && abs((int)pcm[first]) <= e->onset) first++;
        double offset = (double)first / c->rate;
        if (inside && !isnan(c->last_onset_sent)) {
            if (c->rtt_count == c->rtt_capacity &&
                grow((void **)&c->rtt, &c->rtt_capacity, sizeof(double)) != 0)
                return;
            c->rtt[c->rtt_count++] = t + offset - c->last_onset_sent;
        }
        if (c->frequency_count == 0 && inside) c->collect = c->frequency_frames;
    }
    c->previous_quiet = peak < e->quiet;
}

static void receive_rtp(struct engine *e, struct call *c, uint8_t *data, int size, double t) {
    int length = size;
    if (e->unprotect(c->rx, data, &length) != 0) return;
    if (length < 12 || (data[1] & 0x7F) != c->payload_type) return;
    int sequence = (data[2] << 8) | data[3];
    uint32_t timestamp = ((uint32_t)data[4] << 24) | ((uint32_t)data[5] << 16) |
                         ((uint32_t)data[6] << 8) | data[7];
    uint32_t ssrc = ((uint32_t)data[8] << 24) | ((uint32_t)data[9] << 16) |
                    ((uint32_t)data[10] << 8) | data[11];
    count(c, sequence, ssrc);
    int end = length;
    int offset = 12 + 4 * (data[0] & 0x0F);
    if (data[0] & 0x10) {
        if (offset + 4 > end) return;
        offset += 4 + 4 * ((data[offset + 2] << 8) | data[offset + 3]);
    }
    if (data[0] & 0x20) end -= data[end - 1];
    if (offset < end) measure(e, c, data + offset, end - offset, timestamp, t);
}

static int is_rtp(const uint8_t *data, int size) {
    return size > 12 && data[0] > 127 && data[0] < 192 && !(data[1] > 191 && data[1] < 224);
}

static int is_rtcp(const uint8_t *data, int size) {
    return size >= 8 && data[0] > 127 && data[0] < 192 && data[1] > 191 && data[1] < 224;
}

/* The far end's RTCP: what aiortc's receiver took from it is the last SR's time (LSR and
 * when it came), for the receiver reports; nothing else of it is used. */
static void receive_rtcp(struct engine *e, struct call *c, uint8_t *data, int size) {
    int length = size;
    if (e->unprotect_rtcp(c->rx, data, &length) != 0) return;
    for (int at = 0; at + 4 <= length;) {
        int words = (data[at + 2] << 8) | data[at + 3];
        int end = at + 4 * (words + 1);
        if (end > length) break;
        if (data[at + 1] == 200 && end - at >= 28) {
            const uint8_t *p = data + at;
            c->lsr_ssrc = ((uint32_t)p[4] << 24) | ((uint32_t)p[5] << 16) | ((uint32_t)p[6] << 8) | p[7];
            /* the middle 32 bits of the 64-bit NTP timestamp */
            c->lsr = ((uint32_t)p[10] << 24) | ((uint32_t)p[11] << 16) | ((uint32_t)p[12] << 8) | p[13];
            struct timespec t;
            clock_gettime(CLOCK_REALTIME, &t);
            c->lsr_time = (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
            c->has_lsr = 1;
        }
        at = end;
    }
}

/* The far end's last SR (1) or none yet (0). */
int ne_last_sr(struct call *c, uint32_t *ssrc, uint32_t *lsr, double *at) {
    *ssrc = c->lsr_ssrc;
    *lsr = c->lsr;
    *at = c->lsr_time;
    return c->has_lsr;
}

/* Reads what the call's socket has: RTP here, the rest kept for Python. 1 if some was kept. */
static int drain(struct engine *e, struct call *c) {
    int kept = 0;
    for (;;) {
        for (int i = 0; i < BATCH; i++) e->messages[i].msg_hdr.msg_namelen = sizeof e->sources[i];
        int n = recvmmsg(c->fd, e->messages, BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0) break;
        double t = now();
        for (int i = 0; i < n; i++) {
            int size = (int)e->messages[i].msg_len;
            if (e->messages[i].msg_hdr.msg_flags & MSG_TRUNC) continue;
            if (is_rtp(e->rx[i], size)) {
                receive_rtp(e, c, e->rx[i], size, t);
            } else if (is_rtcp(e->rx[i], size)) {
                receive_rtcp(e, c, e->rx[i], size);
            } else if (c->stash_count < STASH) {
                struct stashed *s = &c->stash[(c->stash_head + c->stash_count++) % STASH];
                s->length = size;
                s->from = e->sources[i];
                memcpy(s->data, e->rx[i], size);
                kept = 1;
            }
            if (e->by_fd[c->fd] != c) return kept; /* defensive: never happens in one thread */
        }
        if (n < BATCH) break;
    }
    return kept;
}

/* A datagram kept for Python: its length (-1: none left), its source in `address`/`port`
 * (network order). */
int ne_take_stashed(struct call *c, uint8_t *out, int capacity, uint32_t *address, uint16_t *port) {
    c->reported = 0;
    if (c->stash_count == 0) return -1;
    struct stashed *s = &c->stash[c->stash_head];
    c->stash_head = (c->stash_head + 1) % STASH;
    c->stash_count--;
    int n = s->length < capacity ? s->length : capacity;
    memcpy(out, s->data, n);
    *address = s->from.sin_addr.s_addr;
    *port = s->from.sin_port;
    return n;
}

/* ------------------------------------------------------------------ the selector */

/* Waits like epoll_wait for `epfd` (Python's selector) up to `timeout` seconds (< 0: no
 * limit), sending the calls' frames when due and reading their sockets meanwhile. Returns
 * the fds ready for Python (and their events), or -errno. */
int ne_select(struct engine *e, int epfd, double timeout, int *fds, uint32_t *events, int max) {
    struct epoll_event ready[256];
    double deadline = timeout < 0 ? INFINITY : now() + timeout;
    if (max > 256) max = 256;
    for (;;) {
        double next = send_due(e);
        int out = 0;
        if (e->unreported) { /* kept, not told: the last call had no room for them */
            e->unreported = 0;
            for (int i = 0; i < e->call_count; i++) {
                struct call *c = e->calls[i];
                if (c->stash_count && !c->reported) {
                    if (out == max) {
                        e->unreported = 1;
                        break;
                    }
                    c->reported = 1;
                    fds[out] = c->fd;
                    events[out++] = EPOLLIN;
                }
            }
        }
        double t = now();
        double wake = next < deadline ? next : deadline;
        struct timespec wait = {0, 0};
        struct timespec *limit = &wait;
        if (out == 0 && wake > t) {
            if (isinf(wake)) {
                limit = NULL;
            } else {
                double delay = wake - t;
                wait.tv_sec = (time_t)delay;
                wait.tv_nsec = (long)((delay - (double)wait.tv_sec) * 1e9);
            }
        }
        int n = epoll_pwait2(epfd, ready, max - out > 0 ? max - out : 1, limit, NULL);
        if (n < 0) {
            if (errno == EINTR) return out;
            return -errno;
        }
        for (int i = 0; i < n; i++) {
            int fd = ready[i].data.fd;
            struct call *c = fd >= 0 && fd < e->by_fd_size ? e->by_fd[fd] : NULL;
            if (c != NULL && (ready[i].events & EPOLLIN)) {
                if (drain(e, c) && !c->reported) {
                    if (out < max) {
                        c->reported = 1;
                        fds[out] = fd;
                        events[out++] = ready[i].events;
                    } else {
                        e->unreported = 1;
                    }
                }
            } else if (out < max) {
                fds[out] = fd;
                events[out++] = ready[i].events;
            }
        }
        if (out > 0 || now() >= deadline) {
            send_due(e);
            return out;
        }
    }
}

/* ------------------------------------------------------------------ read-outs */

/* Counters of a call, in this order: packets sent, octets, next frame index, frames sent,
 * frames sent in the window, packets received, remote SSRC, has a base, base sequence,
 * highest sequence, cycles, frequency frames kept. */
void ne_counters(struct call *c, int64_t *out) {
    out[0] = c->packets_sent;
    out[1] = c->octets;
    out[2] = c->k;
    out[3] = c->frames_sent;
    out[4] = c->sent_in_window;
    out[5] = c->received;
    out[6] = c->remote_ssrc;
    out[7] = c->has_base;
    out[8] = c->base_sequence;
    out[9] = c->max_sequence;
    out[10] = c->cycles;
    out[11] = c->frequency_count;
}

void ne_set_frequency_frames(struct call *c, int frames) {
    c->frequency_frames = frames < FREQUENCY_FRAMES_MAX ? frames : FREQUENCY_FRAMES_MAX;
}

size_t ne_arrivals(struct call *c, double **arrivals, int64_t **indexes) {
    *arrivals = c->arrivals;
    *indexes = c->indexes;
    return c->arrivals_count;
}

size_t ne_rtt(struct call *c, double **rtt) {
    *rtt = c->rtt;
    return c->rtt_count;
}

/* The PCM kept for the frequency check: frames `size` samples apart, their lengths. */
int16_t *ne_frequency(struct call *c, int **lengths, int *size) {
    *lengths = c->frequency_lengths;
    *size = c->frequency_size;
    return c->frequency;
}

/* The process's sends in the window: count, late, the latest, and the first late ones. */
int ne_lateness(struct engine *e, int64_t *counts, double *max_late, double *late_at) {
    counts[0] = e->sends;
    counts[1] = e->late;
    *max_late = e->max_late;
    memcpy(late_at, e->late_at, sizeof(double) * 2 * e->late_at_count);
    return e->late_at_count;
}
