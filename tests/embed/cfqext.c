/* A C extension that calls cfq's gradient through its C API capsule, as a
 * third-party extension would: it compiles no cfq code and links none. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "cfq_import.h"

static const cfq_capi *cfq;

/* grad(g, x, dx, min, max, num_bits) -> (rc, dmin, dmax); g, x, dx are
 * C-contiguous float32 buffers of equal length. */
static PyObject *grad(PyObject *self, PyObject *args)
{
    Py_buffer g, x, dx;
    float mn, mx, dmin = 0.0f, dmax = 0.0f;
    int bits, rc;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*w*ffi", &g, &x, &dx, &mn, &mx, &bits))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = cfq->fq_vars_grad((const float *)g.buf, (const float *)x.buf, (size_t)(g.len / 4), mn, mx,
                           bits, 0, (float *)dx.buf, &dmin, &dmax, NULL);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&g);
    PyBuffer_Release(&x);
    PyBuffer_Release(&dx);
    return Py_BuildValue("(iff)", rc, dmin, dmax);
}

static PyObject *describe(PyObject *self, PyObject *noargs)
{
    (void)self;
    (void)noargs;
    return Py_BuildValue("(ssI)", cfq->version(), cfq->isa_name(cfq->active_isa()), cfq->abi_version);
}

static PyMethodDef methods[] = {
    {"grad", grad, METH_VARARGS, "cfq's vars gradient through the capsule"},
    {"describe", describe, METH_NOARGS, "version, active ISA, ABI version"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "cfqext", NULL, -1, methods};

PyMODINIT_FUNC PyInit_cfqext(void)
{
    if ((cfq = cfq_import()) == NULL)
        return NULL;
    return PyModule_Create(&module);
}
