/*
 * The worker's ICE socket's dispatch of media datagrams, in C (gateway/media/ice_mux.py).
 *
 * Every datagram a browser sends to the shared ICE port (`[ice] port`) is first handed to
 * `_MuxSocket.datagram_received`, which finds the call by the sender's address. For the
 * media (DTLS, SRTP, SRTCP: first byte above 3, RFC 7983) that is one dictionary lookup,
 * and that Python frame was the largest Python cost left per datagram once a steady
 * call's relay runs in C (docs/benchmark.md). A `Demux` does the same lookup in the same
 * dictionary and calls the call's protocol directly; everything else (STUN, strangers,
 * malformed input) goes to the Python method, which counts and routes it as before.
 * IPv4 sockets only: an IPv6 address needs the Python method's normalisation.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>

typedef struct {
    PyObject_HEAD
    PyObject *by_address;  /* dict: (host, port) -> the call's protocol */
    PyObject *other;       /* (data, addr): the Python dispatch, for everything else */
    vectorcallfunc vectorcall;
} Demux;

static PyObject *datagram_received_name;

static PyObject *Demux_call(PyObject *callable, PyObject *const *args, size_t nargsf,
                            PyObject *kwnames) {
    Demux *self = (Demux *)callable;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 2 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "Demux(data, addr)");
        return NULL;
    }
    PyObject *data = args[0];
    if (PyBytes_Check(data) && PyBytes_GET_SIZE(data) > 0 &&
        ((const unsigned char *)PyBytes_AS_STRING(data))[0] > 3) {
        PyObject *protocol = PyDict_GetItemWithError(self->by_address, args[1]);
        if (protocol != NULL) {
            Py_INCREF(protocol);
            PyObject *method = PyObject_GetAttr(protocol, datagram_received_name);
            Py_DECREF(protocol);
            if (method == NULL)
                return NULL;
            PyObject *result = PyObject_Vectorcall(method, args, 2, NULL);
            Py_DECREF(method);
            return result;
        }
        if (PyErr_Occurred())
            PyErr_Clear(); /* an address that cannot be a key: the Python method judges */
    }
    return PyObject_Vectorcall(self->other, args, 2, NULL);
}

static PyObject *Demux_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    PyObject *by_address, *other;
    if (!PyArg_ParseTuple(args, "O!O:Demux", &PyDict_Type, &by_address, &other))
        return NULL;
    Demux *self = (Demux *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    Py_INCREF(by_address);
    Py_INCREF(other);
    self->by_address = by_address;
    self->other = other;
    self->vectorcall = Demux_call;
    return (PyObject *)self;
}

static PyObject *Demux_tp_call(Demux *self, PyObject *args, PyObject *kwargs) {
    return PyVectorcall_Call((PyObject *)self, args, kwargs);
}

static int Demux_traverse(Demux *self, visitproc visit, void *arg) {
    Py_VISIT(self->by_address);
    Py_VISIT(self->other);
    return 0;
}

static int Demux_clear(Demux *self) {
    Py_CLEAR(self->by_address);
    Py_CLEAR(self->other);
    return 0;
}

static void Demux_dealloc(Demux *self) {
    PyObject_GC_UnTrack(self);
    Demux_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject DemuxType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gateway.media._icedemux.Demux",
    .tp_doc = "Demux(by_address, other)(data, addr): a media datagram to its call's protocol.",
    .tp_basicsize = sizeof(Demux),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(Demux, vectorcall),
    .tp_new = Demux_new,
    .tp_call = (ternaryfunc)Demux_tp_call,
    .tp_dealloc = (destructor)Demux_dealloc,
    .tp_traverse = (traverseproc)Demux_traverse,
    .tp_clear = (inquiry)Demux_clear,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "gateway.media._icedemux",
    .m_doc = "The ICE socket's dispatch of media datagrams in C (gateway/media/ice_mux.py).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__icedemux(void) {
    datagram_received_name = PyUnicode_InternFromString("datagram_received");
    if (datagram_received_name == NULL || PyType_Ready(&DemuxType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&DemuxType);
    if (PyModule_AddObject(m, "Demux", (PyObject *)&DemuxType) < 0) {
        Py_DECREF(&DemuxType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
