/*
 * One 20 ms frame between G.711 and Opus in one C call (gateway/media/transcoder.py).
 *
 * The Python transcoder does each step of a frame with a call of its own (libopus through
 * ctypes, numpy for the G.711 table and the concealer's history, bytes in between): about
 * 10 us of interpreter and numpy per frame pair, as much again as libopus itself. Here the
 * steady case is one call: decode, G.711 table, the concealer's history shifted and
 * appended, encode. Anything else (a payload that is not one 20 ms frame, a decoding
 * error, the concealer fading back in after a loss) is left to the Python path, before
 * any state was changed -- except a decoded Opus packet of another length, whose PCM is
 * handed back (the decoder has moved on).
 *
 * libopus is the one opuslib-next loaded: Python passes the addresses of opus_encode and
 * opus_decode (setup), of the codec states, of the G.711 tables and of the concealer's
 * history (numpy arrays the transcoder keeps alive). No threads, no allocation but the
 * result.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_opusstep.h"

static opus_encode_function opus_encode_fn = NULL;
static opus_decode_function opus_decode_fn = NULL;

static int as_address(PyObject *value, void **out) {
    *out = PyLong_AsVoidPtr(value);
    return (*out == NULL && PyErr_Occurred()) ? -1 : 0;
}

static int as_size(PyObject *value, Py_ssize_t *out) {
    *out = PyLong_AsSsize_t(value);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

static PyObject *setup(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    void *encode, *decode;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "setup(opus_encode address, opus_decode address)");
        return NULL;
    }
    if (as_address(args[0], &encode) < 0 || as_address(args[1], &decode) < 0)
        return NULL;
    if (encode == NULL || decode == NULL) {
        PyErr_SetString(PyExc_ValueError, "a null function address");
        return NULL;
    }
    opus_encode_fn = (opus_encode_function)encode;
    opus_decode_fn = (opus_decode_function)decode;
    Py_RETURN_NONE;
}

/*
 * opus_to_g711(decoder, encode_table, history, history_length, pcm, pcm_capacity, frame,
 *              payload) -> bytes | int
 *
 * Decodes `payload` into `pcm` (int16, `pcm_capacity` samples). A frame of `frame` samples:
 * returns its G.711 encoding (`encode_table`: 65536 codes indexed by the sample as uint16)
 * and appends it to the history. Otherwise returns the number of samples decoded (the PCM
 * is in `pcm`), or libopus's negative error, and changes nothing else.
 */
static PyObject *opus_to_g711(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    void *decoder, *table, *history, *pcm;
    Py_ssize_t history_length, capacity, frame;
    Py_buffer payload;
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "opus_to_g711 takes 8 arguments");
        return NULL;
    }
    if (opus_decode_fn == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "setup() was not called");
        return NULL;
    }
    if (as_address(args[0], &decoder) < 0 || as_address(args[1], &table) < 0 ||
        as_address(args[2], &history) < 0 || as_size(args[3], &history_length) < 0 ||
        as_address(args[4], &pcm) < 0 || as_size(args[5], &capacity) < 0 ||
        as_size(args[6], &frame) < 0)
        return NULL;
    if (frame <= 0 || frame > MAX_FRAME || frame > capacity || history_length < 0) {
        PyErr_SetString(PyExc_ValueError, "frame, capacity or history length out of range");
        return NULL;
    }
    if (PyObject_GetBuffer(args[7], &payload, PyBUF_SIMPLE) < 0)
        return NULL;
    if (payload.len > INT32_MAX) {
        PyBuffer_Release(&payload);
        return PyLong_FromLong(-1);
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, frame);
    if (out == NULL) {
        PyBuffer_Release(&payload);
        return NULL;
    }
    opus_step step = {decoder, table, (float *)history, history_length, (int)frame};
    int samples = opus_step_to_g711(&step, opus_decode_fn, (const unsigned char *)payload.buf,
                                    (int32_t)payload.len, (int16_t *)pcm, (int)capacity,
                                    (unsigned char *)PyBytes_AS_STRING(out));
    PyBuffer_Release(&payload);
    if (samples != frame) {
        Py_DECREF(out);
        return PyLong_FromLong(samples);
    }
    return out;
}

/*
 * g711_to_opus(encoder, decode_table, history, history_length, frame, payload)
 *     -> bytes | None
 *
 * A payload of `frame` G.711 codes: decoded through `decode_table` (256 int16 samples),
 * appended to the history, encoded by libopus; returns the Opus packet. Any other length,
 * or an encoding error: None, and nothing changed (the Python path takes the payload).
 */
static PyObject *g711_to_opus(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    void *encoder, *table, *history;
    Py_ssize_t history_length, frame;
    Py_buffer payload;
    unsigned char packet[MAX_PACKET_BYTES];
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "g711_to_opus takes 6 arguments");
        return NULL;
    }
    if (opus_encode_fn == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "setup() was not called");
        return NULL;
    }
    if (as_address(args[0], &encoder) < 0 || as_address(args[1], &table) < 0 ||
        as_address(args[2], &history) < 0 || as_size(args[3], &history_length) < 0 ||
        as_size(args[4], &frame) < 0)
        return NULL;
    if (frame <= 0 || frame > MAX_FRAME || history_length < 0) {
        PyErr_SetString(PyExc_ValueError, "frame or history length out of range");
        return NULL;
    }
    if (PyObject_GetBuffer(args[5], &payload, PyBUF_SIMPLE) < 0)
        return NULL;
    if (payload.len != frame) {
        PyBuffer_Release(&payload);
        Py_RETURN_NONE;
    }
    opus_step step = {encoder, table, (float *)history, history_length, (int)frame};
    int32_t size = g711_step_to_opus(&step, opus_encode_fn, (const unsigned char *)payload.buf,
                                     packet);
    PyBuffer_Release(&payload);
    if (size < 0)
        Py_RETURN_NONE; /* libopus refused the frame: nothing was changed */
    return PyBytes_FromStringAndSize((const char *)packet, size);
}

static PyMethodDef methods[] = {
    {"setup", (PyCFunction)(void (*)(void))setup, METH_FASTCALL,
     "setup(opus_encode address, opus_decode address)"},
    {"opus_to_g711", (PyCFunction)(void (*)(void))opus_to_g711, METH_FASTCALL,
     "One Opus payload -> one G.711 frame (bytes), or the samples decoded (int)."},
    {"g711_to_opus", (PyCFunction)(void (*)(void))g711_to_opus, METH_FASTCALL,
     "One 20 ms G.711 payload -> one Opus packet (bytes), or None for the Python path."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_opusframes",
    .m_doc = "One 20 ms frame between G.711 and Opus in one C call.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__opusframes(void) { return PyModule_Create(&module_definition); }
