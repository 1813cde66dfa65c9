/*
 * The steady path of a call between a browser and a G.711 phone, in C: browser SRTP <->
 * phone RTP, the G.711 payload relayed as it is, or (`transcoding`) the browser's Opus
 * transcoded to and from the phone's G.711 with the transcoder's C frame step
 * (_opusstep.h, shared with gateway/media/_opusframes.c).
 *
 * gateway/media/native_relay.py decides when this runs and owns everything else; read its
 * docstring first. In short: while a call is in a steady state (both legs up, the same
 * G.711 codec on both, nothing muted or held, no DTMF event in flight, each source known
 * and in sequence), a `Relay` is "engaged": its two methods are the `datagram_received`
 * of the browser's ICE socket protocol and of the phone's RTP socket protocol, so each
 * datagram is unprotected, checked, counted, re-addressed, protected and sent in one C
 * call instead of a dozen Python steps. The state of the path (sequence numbers,
 * timestamps, reception statistics) lives in the Relay while it is engaged; Python copies
 * it to and from its own objects when it engages, once a second while engaged, and when
 * the relay "yields".
 *
 * The relay yields (calls `on_yield(reason)`, which disengages it) before changing any
 * state, whenever a datagram is not the steady case: a new source, a jump in sequence
 * numbers or timestamps, a telephone event, a malformed packet. The datagram then goes
 * on through the Python path, which handles every case; Python engages the relay again
 * once the call is steady. Datagrams that are not RTP audio (STUN, DTLS, RTCP, strangers'
 * packets) are handed to the Python handlers unchanged and without yielding: those paths
 * do not touch the state the relay holds.
 *
 * libsrtp is the one pylibsrtp loaded (its contexts are pylibsrtp's): Python passes the
 * addresses of srtp_protect and srtp_unprotect and of the two session contexts.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "_opusstep.h"

typedef int (*srtp_function)(void *context, void *packet, int *length);
typedef int (*opus_samples_function)(const unsigned char *packet, int32_t length, int32_t rate);

#define BUFFER_SIZE 1500
#define SRTP_TRAILER 16    /* libsrtp's SRTP_MAX_TRAILER_LEN */
#define MAX_PAYLOAD 1460   /* sip_bridge.rtp.packet.MAX_PAYLOAD_SIZE */
#define JITTER_EVERY 8     /* gateway.media.srtp_channel.ChannelReception.JITTER_EVERY */
#define MAX_DROPOUT 3000   /* RFC 3550 A.1, as sip_bridge.rtp.rtcp */
#define MAX_MISORDER 100
#define MAX_FRAMES 50      /* gateway.media.bridge._Timeline: a gap of more re-anchors */

/* Why the relay gave the path back to Python (`Relay.last_yield`). */
enum {
    YIELD_BROWSER_SOURCE = 1,   /* a new SSRC from the browser */
    YIELD_BROWSER_TIMING = 2,   /* browser timestamps not one to 50 frames on */
    YIELD_PHONE_PAYLOAD = 3,    /* from the phone: not the audio payload type (DTMF, CN) */
    YIELD_PHONE_SOURCE = 4,     /* a new SSRC from the phone */
    YIELD_PHONE_SEQUENCE = 5,   /* a jump in the phone's sequence numbers */
    YIELD_PHONE_TIMING = 6,     /* phone timestamps not one to 50 frames on */
    YIELD_MALFORMED = 7,        /* a packet the Python path must judge */
    /* transcoding only */
    YIELD_LOSS = 8,             /* frames lost upstream (either way): Python conceals them */
    YIELD_FRAME_SIZE = 9,       /* a packet that is not one 20 ms frame (Python reframes it) */
    YIELD_CODEC = 10,           /* libopus refused a frame (Python conceals it) */
};

typedef struct {
    PyObject_HEAD
    /* wiring, set once by Python */
    unsigned long long protect_address, unprotect_address, tx_session, rx_session;
    int browser_fd, phone_fd;
    struct sockaddr_storage browser_address, phone_address;
    socklen_t browser_address_size, phone_address_size;
    PyObject *browser_other;    /* (data, addr): the protocol's own datagram_received */
    PyObject *browser_srtp;     /* (data): the channel's Python receive, when not engaged */
    PyObject *browser_plain;    /* (packet): the channel's Python path after unprotect */
    PyObject *phone_receive;    /* (data, addr): the RTP session's own handler */
    PyObject *on_yield;         /* (reason): disengage; Python takes the state back */
    PyObject *latched_host;
    long latched_port;
    int engaged;
    int last_yield;
    long long yields;
    int frame_ticks;            /* one 20 ms frame in the browser's RTP ticks */
    int clock_rate;             /* the browser's RTP clock */
    int phone_frame_ticks;      /* ... and the phone's (the same while relaying G.711) */
    int phone_clock_rate;

    /* transcoding: libopus (opuslib-next's), and each direction's transcoder */
    int transcoding;
    unsigned long long opus_encode_address, opus_decode_address, opus_samples_address;
    unsigned long long decoder, encode_table, a_history, encoder, decode_table, b_history;
    long long a_history_length, b_history_length;
    int pcm_frame;              /* samples of a 20 ms frame at the phone's rate */

    /* browser -> phone: the browser's stream as received (ChannelReception) */
    int browser_pt;
    long long browser_ssrc;
    long long br_received, br_cycles, br_jitter_q4, br_last_arrival, br_last_timestamp;
    int br_max_seq, br_has_last;
    long long a_last;           /* the bridge's timeline of the browser's timestamps */
    long long a_frames;
    /* ... and as sent to the phone (RtpSession, its RtpPacketizer) */
    int phone_pt;
    long long phone_ssrc;
    int ph_sequence;
    long long ph_packets_sent, ph_octets_sent, ph_last_relay_timestamp, ph_next_timestamp;
    double ph_last_send_time;

    /* phone -> browser: the phone's stream as received (RtpSession, ReceptionStatistics) */
    int phone_rx_pt;
    long long phone_rx_ssrc;
    long long ph_received;
    double ph_last_rtp_time;
    long long rs_received, rs_cycles, rs_last_timestamp;
    int rs_max_seq, rs_has_transit;
    double rs_transit, rs_last_arrival_units, rs_jitter;
    long long b_last, b_frames;  /* the bridge's timeline of the phone's timestamps */
    /* ... and as sent to the browser (WebRtcLeg, SrtpAudioChannel) */
    long long br_pts, br_tx_last_timestamp, br_octets, br_packets_sent, br_send_drops;
    int br_tx_sequence, header_size;

    unsigned char tx[BUFFER_SIZE];  /* header template + payload, protected in place */
    unsigned char rx[BUFFER_SIZE];
    unsigned char out[BUFFER_SIZE];
} Relay;

static double monotonic_seconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + now.tv_nsec / 1e9;
}

static double wall_seconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (double)now.tv_sec + now.tv_nsec / 1e9;
}

static inline uint32_t read32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void write32(unsigned char *p, uint32_t v) {
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}

/* The payload of an RTP packet: [*offset, *end). 0 if the header does not fit. */
static int payload_bounds(const unsigned char *p, int size, int *offset, int *end) {
    int at = 12 + 4 * (p[0] & 0x0F);
    if (at > size)
        return 0;
    if (p[0] & 0x10) {
        if (at + 4 > size)
            return 0;
        at += 4 + 4 * (((int)p[at + 2] << 8) | p[at + 3]);
        if (at > size)
            return 0;
    }
    int stop = size;
    if (p[0] & 0x20) {
        int padding = p[size - 1];
        if (padding == 0 || size - padding < at)
            return 0;
        stop = size - padding;
    }
    *offset = at;
    *end = stop;
    return 1;
}

/* How many frames the timestamp advanced past `last`: 1 to MAX_FRAMES, else 0. */
static inline long frames_advanced(long long last, uint32_t timestamp, int frame_ticks) {
    uint32_t difference = timestamp - (uint32_t)last;
    if (difference % (uint32_t)frame_ticks)
        return 0;
    uint32_t frames = difference / (uint32_t)frame_ticks;
    return (frames >= 1 && frames <= MAX_FRAMES) ? (long)frames : 0;
}

static void send_datagram(int fd, const void *data, size_t size,
                          const struct sockaddr_storage *address, socklen_t address_size) {
    /* UDP on a non-blocking socket: a full buffer loses this datagram, as it would
     * through the event loop's transport. */
    while (sendto(fd, data, size, 0, (const struct sockaddr *)address, address_size) < 0) {
        if (errno != EINTR)
            return;
    }
}

#define ABSENT(function) ((function) == NULL || (function) == Py_None)

/* Give the path back to Python. Never fails: an exception of `on_yield` is reported and
 * dropped, since one escaping `datagram_received` could make the event loop close the
 * socket (the worker's one ICE socket: every call on it). Disengaged either way, the
 * relay then hands every datagram to the Python handlers. Returns 0. */
static int yield_path(Relay *self, int reason) {
    self->engaged = 0;
    self->last_yield = reason;
    self->yields++;
    if (ABSENT(self->on_yield))
        return 0;
    PyObject *result = PyObject_CallFunction(self->on_yield, "i", reason);
    if (result == NULL)
        PyErr_WriteUnraisable(self->on_yield);
    else
        Py_DECREF(result);
    return 0;
}

static PyObject *call2(PyObject *function, PyObject *const *args) {
    if (ABSENT(function))
        Py_RETURN_NONE;
    return PyObject_Vectorcall(function, args, 2, NULL);
}

/* ------------------------------------------------------------------ transcoding */

/* Whether the transcoding fields were all given: checked once, when Python turns
 * `transcoding` on after setting them (Relay_set_transcoding), not per packet. */
static int transcoder_set(const Relay *self) {
    return self->opus_encode_address && self->opus_decode_address &&
           self->opus_samples_address && self->decoder && self->encode_table &&
           self->a_history && self->encoder && self->decode_table && self->b_history &&
           self->pcm_frame > 0 && self->pcm_frame <= MAX_FRAME && self->a_history_length >= 0 &&
           self->b_history_length >= 0;
}

/* The browser's Opus payload -> the phone's G.711 frame in `self->out` after the RTP
 * header. 0, or why Python must take it; a reason leaves the decoder as it was. */
static int transcode_from_browser(Relay *self, const unsigned char *payload, int size,
                                  long frames) {
    if (frames != 1)
        return YIELD_LOSS;
    opus_samples_function samples_of = (opus_samples_function)(uintptr_t)self->opus_samples_address;
    if (samples_of(payload, size, self->pcm_frame * 50) != self->pcm_frame)
        return YIELD_FRAME_SIZE; /* (or not an Opus packet: libopus's error) */
    opus_step step = {(void *)(uintptr_t)self->decoder,
                      (const void *)(uintptr_t)self->encode_table,
                      (float *)(uintptr_t)self->a_history, (ptrdiff_t)self->a_history_length,
                      self->pcm_frame};
    int16_t pcm[MAX_FRAME];
    opus_decode_function decode = (opus_decode_function)(uintptr_t)self->opus_decode_address;
    if (opus_step_to_g711(&step, decode, payload, size, pcm, self->pcm_frame, self->out + 12) !=
        self->pcm_frame)
        return YIELD_CODEC;
    return 0;
}

/* The phone's G.711 frame -> one Opus packet in `self->tx` after the browser's RTP header
 * (its size in *encoded). 0, or why Python must take it, the encoder as it was. */
static int transcode_from_phone(Relay *self, const unsigned char *payload, int size,
                                long frames, int *encoded) {
    if (frames != 1)
        return YIELD_LOSS;
    if (size != self->pcm_frame)
        return YIELD_FRAME_SIZE;
    opus_step step = {(void *)(uintptr_t)self->encoder,
                      (const void *)(uintptr_t)self->decode_table,
                      (float *)(uintptr_t)self->b_history, (ptrdiff_t)self->b_history_length,
                      self->pcm_frame};
    opus_encode_function encode = (opus_encode_function)(uintptr_t)self->opus_encode_address;
    int32_t length = g711_step_to_opus(&step, encode, payload, self->tx + self->header_size);
    if (length < 0)
        return YIELD_CODEC;
    *encoded = (int)length;
    return 0;
}

/* ------------------------------------------------------------------ browser -> phone */

static PyObject *Relay_from_browser(Relay *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "from_browser(data, addr)");
        return NULL;
    }
    PyObject *data = args[0];
    if (!PyBytes_Check(data))
        return call2(self->browser_other, args);
    const unsigned char *d = (const unsigned char *)PyBytes_AS_STRING(data);
    Py_ssize_t size = PyBytes_GET_SIZE(data);
    /* RFC 7983: 128-191 is RTP or RTCP; RTCP's packet types 192-223 go to aiortc. */
    if (!(size > 12 && d[0] > 127 && d[0] < 192 && !(d[1] > 191 && d[1] < 224)))
        return call2(self->browser_other, args);
    if (!self->engaged) {
        if (ABSENT(self->browser_srtp))
            Py_RETURN_NONE;
        return PyObject_CallOneArg(self->browser_srtp, data);
    }
    if (size > BUFFER_SIZE)
        Py_RETURN_NONE;
    unsigned char *p = self->rx;
    memcpy(p, d, size);
    int length = (int)size;
    srtp_function unprotect = (srtp_function)(uintptr_t)self->unprotect_address;
    if (unprotect((void *)(uintptr_t)self->rx_session, p, &length) != 0)
        Py_RETURN_NONE; /* replayed, forged, or not for this session */
    if ((p[1] & 0x7F) != self->browser_pt || length < 12)
        Py_RETURN_NONE;
    uint16_t sequence = ((uint16_t)p[2] << 8) | p[3];
    uint32_t timestamp = read32(p + 4);
    uint32_t ssrc = read32(p + 8);
    int offset = 0, end = 0;
    int bounded = payload_bounds(p, length, &offset, &end);
    long frames = frames_advanced(self->a_last, timestamp, self->frame_ticks);
    int reason = 0;
    if (ssrc != (uint32_t)self->browser_ssrc)
        reason = YIELD_BROWSER_SOURCE;
    else if (bounded && offset < end && (frames == 0 || end - offset > MAX_PAYLOAD))
        reason = YIELD_BROWSER_TIMING;
    else if (self->transcoding && bounded && offset < end)
        reason = transcode_from_browser(self, p + offset, end - offset, frames);
    if (reason) {
        if (yield_path(self, reason) < 0)
            return NULL;
        PyObject *plain = PyBytes_FromStringAndSize((const char *)p, length);
        if (plain == NULL)
            return NULL;
        PyObject *result = ABSENT(self->browser_plain)
                               ? (Py_INCREF(Py_None), Py_None)
                               : PyObject_CallOneArg(self->browser_plain, plain);
        Py_DECREF(plain);
        return result;
    }
    /* The browser's stream as received (what aiortc's receiver reports tell it). */
    long long received = ++self->br_received;
    int highest = self->br_max_seq;
    int delta = (sequence - highest) & 0xFFFF;
    if (delta > 0 && delta < 0x8000) {
        if (sequence < highest)
            self->br_cycles += 0x10000;
        self->br_max_seq = sequence;
        if (!(received & (JITTER_EVERY - 1))) {
            long long arrival = (long long)(wall_seconds() * self->clock_rate);
            if (self->br_has_last && (uint32_t)self->br_last_timestamp != timestamp) {
                long long change = (arrival - self->br_last_arrival) -
                                   (long long)(uint32_t)(timestamp - (uint32_t)self->br_last_timestamp);
                if (change < 0)
                    change = -change;
                self->br_jitter_q4 += change - ((self->br_jitter_q4 + 8) >> 4);
            }
            self->br_last_arrival = arrival;
            self->br_last_timestamp = timestamp;
            self->br_has_last = 1;
        }
    }
    if (!bounded || offset >= end)
        Py_RETURN_NONE;
    /* The bridge, then the phone's RtpSession.relay_payload. */
    int payload_size = self->transcoding ? self->pcm_frame : end - offset;
    self->a_last = timestamp;
    self->a_frames++;
    uint32_t out_timestamp = (uint32_t)self->ph_last_relay_timestamp +
                             (uint32_t)(frames * self->phone_frame_ticks);
    self->ph_last_send_time = monotonic_seconds();
    self->ph_last_relay_timestamp = out_timestamp;
    self->ph_next_timestamp = (long long)out_timestamp + payload_size;
    unsigned char *o = self->out;
    o[0] = 0x80;
    o[1] = (unsigned char)self->phone_pt;
    o[2] = self->ph_sequence >> 8;
    o[3] = self->ph_sequence & 0xFF;
    write32(o + 4, out_timestamp);
    write32(o + 8, (uint32_t)self->phone_ssrc);
    if (!self->transcoding) /* (transcoded: the G.711 frame is there already) */
        memcpy(o + 12, p + offset, payload_size);
    self->ph_sequence = (self->ph_sequence + 1) & 0xFFFF;
    self->ph_packets_sent++;
    self->ph_octets_sent += payload_size;
    send_datagram(self->phone_fd, o, 12 + payload_size, &self->phone_address,
                  self->phone_address_size);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ phone -> browser */

static int same_address(Relay *self, PyObject *addr) {
    if (!PyTuple_Check(addr) || PyTuple_GET_SIZE(addr) < 2 || self->latched_host == NULL)
        return 0;
    PyObject *host = PyTuple_GET_ITEM(addr, 0);
    PyObject *port = PyTuple_GET_ITEM(addr, 1);
    int overflow = 0;
    if (!PyLong_Check(port) || PyLong_AsLongAndOverflow(port, &overflow) != self->latched_port ||
        overflow)
        return 0;
    if (host == self->latched_host)
        return 1;
    if (!PyUnicode_Check(host))
        return 0;
    return PyUnicode_Compare(host, self->latched_host) == 0;
}

static PyObject *Relay_from_phone(Relay *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "from_phone(data, addr)");
        return NULL;
    }
    PyObject *data = args[0];
    if (!self->engaged || !PyBytes_Check(data))
        return call2(self->phone_receive, args);
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(data);
    Py_ssize_t size = PyBytes_GET_SIZE(data);
    /* Too short, not version 2, RTCP on a muxed port, or from another address: the
     * Python path counts or handles these and touches nothing the relay holds. */
    if (size < 12 || (p[0] >> 6) != 2 || ((p[1] & 0x7F) >= 64 && (p[1] & 0x7F) <= 95) ||
        !same_address(self, args[1])) {
        return call2(self->phone_receive, args);
    }
    uint16_t sequence = ((uint16_t)p[2] << 8) | p[3];
    uint32_t timestamp = read32(p + 4);
    uint32_t ssrc = read32(p + 8);
    int offset = 0, end = 0;
    int bounded = payload_bounds(p, (int)size, &offset, &end);
    int udelta = (sequence - self->rs_max_seq) & 0xFFFF;
    long frames = frames_advanced(self->b_last, timestamp, self->phone_frame_ticks);
    int reason = 0, encoded = 0;
    if ((p[1] & 0x7F) != self->phone_rx_pt)
        reason = YIELD_PHONE_PAYLOAD;
    else if (ssrc != (uint32_t)self->phone_rx_ssrc)
        reason = YIELD_PHONE_SOURCE;
    else if (!bounded || offset >= end)
        reason = YIELD_MALFORMED;
    else if (udelta >= MAX_DROPOUT && udelta <= 0x10000 - MAX_MISORDER)
        reason = YIELD_PHONE_SEQUENCE;
    else if (frames == 0 || self->header_size + (end - offset) + SRTP_TRAILER > BUFFER_SIZE)
        reason = YIELD_PHONE_TIMING;
    else if (self->transcoding)
        reason = transcode_from_phone(self, p + offset, end - offset, frames, &encoded);
    if (reason) {
        if (yield_path(self, reason) < 0)
            return NULL;
        return call2(self->phone_receive, args);
    }
    /* The phone's stream as received (RFC 3550 A.1 and A.8, as ReceptionStatistics). */
    double now = monotonic_seconds();
    self->ph_received++;
    self->ph_last_rtp_time = now;
    if (udelta < MAX_DROPOUT) {
        if (sequence < self->rs_max_seq)
            self->rs_cycles += 0x10000;
        self->rs_max_seq = sequence;
    }
    self->rs_received++;
    double arrival_units = now * self->phone_clock_rate;
    if (self->rs_has_transit) {
        long long elapsed = (long long)((timestamp - (uint32_t)self->rs_last_timestamp +
                                         0x80000000u) & 0xFFFFFFFFu) - 0x80000000LL;
        double d = (arrival_units - self->rs_last_arrival_units) - (double)elapsed;
        self->rs_jitter += (fabs(d) - self->rs_jitter) / 16.0;
    }
    self->rs_transit = arrival_units - timestamp;
    self->rs_has_transit = 1;
    self->rs_last_timestamp = timestamp;
    self->rs_last_arrival_units = arrival_units;
    /* The bridge, then WebRtcLeg.send and SrtpAudioChannel.send. */
    self->b_last = timestamp;
    self->b_frames++;
    int payload_size = self->transcoding ? encoded : end - offset;
    self->br_pts += frames * self->frame_ticks;
    uint32_t out_timestamp = (uint32_t)self->br_pts;
    unsigned char *t = self->tx;
    t[1] = (unsigned char)(self->br_packets_sent == 0 ? 0x80 | self->browser_pt : self->browser_pt);
    t[2] = self->br_tx_sequence >> 8;
    t[3] = self->br_tx_sequence & 0xFF;
    write32(t + 4, out_timestamp);
    if (!self->transcoding) /* (transcoded: the Opus packet is there already) */
        memcpy(t + self->header_size, p + offset, payload_size);
    int length = self->header_size + payload_size;
    srtp_function protect = (srtp_function)(uintptr_t)self->protect_address;
    if (protect((void *)(uintptr_t)self->tx_session, t, &length) != 0) {
        self->br_send_drops++;
        Py_RETURN_NONE;
    }
    send_datagram(self->browser_fd, t, length, &self->browser_address,
                  self->browser_address_size);
    self->br_tx_sequence = (self->br_tx_sequence + 1) & 0xFFFF;
    self->br_tx_last_timestamp = out_timestamp;
    self->br_octets += payload_size;
    self->br_packets_sent++;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ set-up */

static int resolve(PyObject *host, long port, struct sockaddr_storage *out, socklen_t *size) {
    const char *text = PyUnicode_AsUTF8(host);
    if (text == NULL)
        return -1;
    if (port < 0 || port > 65535) {
        PyErr_SetString(PyExc_ValueError, "port out of range");
        return -1;
    }
    memset(out, 0, sizeof(*out));
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *size = sizeof(*v4);
        return 0;
    }
    if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *size = sizeof(*v6);
        return 0;
    }
    PyErr_Format(PyExc_ValueError, "not a numeric IP address: %R", host);
    return -1;
}

static PyObject *Relay_set_browser_address(Relay *self, PyObject *args) {
    PyObject *host;
    long port;
    if (!PyArg_ParseTuple(args, "Ul", &host, &port))
        return NULL;
    if (resolve(host, port, &self->browser_address, &self->browser_address_size) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Relay_set_phone_address(Relay *self, PyObject *args) {
    PyObject *host;
    long port;
    if (!PyArg_ParseTuple(args, "Ul", &host, &port))
        return NULL;
    if (resolve(host, port, &self->phone_address, &self->phone_address_size) < 0)
        return NULL;
    Py_INCREF(host);
    Py_XSETREF(self->latched_host, host);
    self->latched_port = port;
    Py_RETURN_NONE;
}

static PyObject *Relay_set_browser_header(Relay *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (view.len < 12 || view.len > 12 + 4 + 64) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "an RTP header of 12 to 80 bytes");
        return NULL;
    }
    memcpy(self->tx, view.buf, view.len);
    self->header_size = (int)view.len;
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static int Relay_traverse(Relay *self, visitproc visit, void *arg) {
    Py_VISIT(self->browser_other);
    Py_VISIT(self->browser_srtp);
    Py_VISIT(self->browser_plain);
    Py_VISIT(self->phone_receive);
    Py_VISIT(self->on_yield);
    return 0;
}

static int Relay_clear(Relay *self) {
    Py_CLEAR(self->browser_other);
    Py_CLEAR(self->browser_srtp);
    Py_CLEAR(self->browser_plain);
    Py_CLEAR(self->phone_receive);
    Py_CLEAR(self->on_yield);
    Py_CLEAR(self->latched_host);
    return 0;
}

static void Relay_dealloc(Relay *self) {
    PyObject_GC_UnTrack(self);
    Relay_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Relay_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    Relay *self = (Relay *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->browser_fd = self->phone_fd = -1;
    self->frame_ticks = self->phone_frame_ticks = self->pcm_frame = 160;
    self->clock_rate = self->phone_clock_rate = 8000;
    self->header_size = 12;
    return (PyObject *)self;
}

#define M(name, type) {#name, type, offsetof(Relay, name), 0, NULL}
/* `transcoding`: turned on only once every transcoding field is set, so that the
 * per-packet path need not look at them again. */
static PyObject *Relay_get_transcoding(Relay *self, void *closure) {
    (void)closure;
    return PyLong_FromLong(self->transcoding);
}

static int Relay_set_transcoding(Relay *self, PyObject *value, void *closure) {
    (void)closure;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "transcoding cannot be deleted");
        return -1;
    }
    long on = PyLong_AsLong(value);
    if (on == -1 && PyErr_Occurred())
        return -1;
    if (on && !transcoder_set(self)) {
        PyErr_SetString(PyExc_ValueError, "transcoding needs libopus's functions, both codec "
                                          "states, both G.711 tables and both histories first");
        return -1;
    }
    self->transcoding = on != 0;
    return 0;
}

static PyGetSetDef Relay_getset[] = {
    {"transcoding", (getter)Relay_get_transcoding, (setter)Relay_set_transcoding, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef Relay_members[] = {
    M(protect_address, T_ULONGLONG), M(unprotect_address, T_ULONGLONG),
    M(tx_session, T_ULONGLONG), M(rx_session, T_ULONGLONG),
    M(browser_fd, T_INT), M(phone_fd, T_INT),
    M(browser_other, T_OBJECT), M(browser_srtp, T_OBJECT), M(browser_plain, T_OBJECT),
    M(phone_receive, T_OBJECT), M(on_yield, T_OBJECT),
    M(engaged, T_INT), M(last_yield, T_INT), M(yields, T_LONGLONG),
    M(frame_ticks, T_INT), M(clock_rate, T_INT),
    M(phone_frame_ticks, T_INT), M(phone_clock_rate, T_INT),
    M(opus_encode_address, T_ULONGLONG),
    M(opus_decode_address, T_ULONGLONG), M(opus_samples_address, T_ULONGLONG),
    M(decoder, T_ULONGLONG), M(encode_table, T_ULONGLONG), M(a_history, T_ULONGLONG),
    M(a_history_length, T_LONGLONG), M(encoder, T_ULONGLONG), M(decode_table, T_ULONGLONG),
    M(b_history, T_ULONGLONG), M(b_history_length, T_LONGLONG), M(pcm_frame, T_INT),
    M(browser_pt, T_INT), M(browser_ssrc, T_LONGLONG),
    M(br_received, T_LONGLONG), M(br_cycles, T_LONGLONG), M(br_jitter_q4, T_LONGLONG),
    M(br_last_arrival, T_LONGLONG), M(br_last_timestamp, T_LONGLONG),
    M(br_max_seq, T_INT), M(br_has_last, T_INT),
    M(a_last, T_LONGLONG), M(a_frames, T_LONGLONG),
    M(phone_pt, T_INT), M(phone_ssrc, T_LONGLONG), M(ph_sequence, T_INT),
    M(ph_packets_sent, T_LONGLONG), M(ph_octets_sent, T_LONGLONG),
    M(ph_last_relay_timestamp, T_LONGLONG), M(ph_next_timestamp, T_LONGLONG),
    M(ph_last_send_time, T_DOUBLE),
    M(phone_rx_pt, T_INT), M(phone_rx_ssrc, T_LONGLONG),
    M(ph_received, T_LONGLONG), M(ph_last_rtp_time, T_DOUBLE),
    M(rs_received, T_LONGLONG), M(rs_cycles, T_LONGLONG), M(rs_last_timestamp, T_LONGLONG),
    M(rs_max_seq, T_INT), M(rs_has_transit, T_INT),
    M(rs_transit, T_DOUBLE), M(rs_last_arrival_units, T_DOUBLE), M(rs_jitter, T_DOUBLE),
    M(b_last, T_LONGLONG), M(b_frames, T_LONGLONG),
    M(br_pts, T_LONGLONG), M(br_tx_last_timestamp, T_LONGLONG), M(br_octets, T_LONGLONG),
    M(br_packets_sent, T_LONGLONG), M(br_send_drops, T_LONGLONG),
    M(br_tx_sequence, T_INT),
    {NULL},
};
#undef M

static PyMethodDef Relay_methods[] = {
    {"from_browser", (PyCFunction)(void (*)(void))Relay_from_browser, METH_FASTCALL,
     "The browser's ICE socket protocol's datagram_received(data, addr)."},
    {"from_phone", (PyCFunction)(void (*)(void))Relay_from_phone, METH_FASTCALL,
     "The phone's RTP socket protocol's datagram_received(data, addr)."},
    {"set_browser_address", (PyCFunction)Relay_set_browser_address, METH_VARARGS,
     "Where the browser's SRTP goes: (numeric host, port)."},
    {"set_phone_address", (PyCFunction)Relay_set_phone_address, METH_VARARGS,
     "The phone's latched RTP address (numeric host, port): where its audio comes from "
     "and where ours goes."},
    {"set_browser_header", (PyCFunction)Relay_set_browser_header, METH_O,
     "The RTP header of the browser's stream (SSRC and header extension written)."},
    {NULL},
};

static PyTypeObject RelayType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gateway.media._g711relay.Relay",
    .tp_doc = "One call's G.711 path between the browser's SRTP and the phone's RTP.",
    .tp_basicsize = sizeof(Relay),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = Relay_new,
    .tp_dealloc = (destructor)Relay_dealloc,
    .tp_traverse = (traverseproc)Relay_traverse,
    .tp_clear = (inquiry)Relay_clear,
    .tp_members = Relay_members,
    .tp_getset = Relay_getset,
    .tp_methods = Relay_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "gateway.media._g711relay",
    .m_doc = "The G.711 pass-through path of a call in C (gateway/media/native_relay.py).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__g711relay(void) {
    if (PyType_Ready(&RelayType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&RelayType);
    if (PyModule_AddObject(m, "Relay", (PyObject *)&RelayType) < 0) {
        Py_DECREF(&RelayType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
