/*
 * cfq_import.h -- header-only import of cfq's C API for other Python
 * extensions, in the manner of numpy's import_array().
 *
 *     #include <Python.h>
 *     #include "cfq_import.h"      // cfq.get_include() has both headers
 *
 *     static const cfq_capi *cfq;  // one per extension
 *     PyMODINIT_FUNC PyInit_mine(void) {
 *         if ((cfq = cfq_import()) == NULL) return NULL;  // ImportError set
 *         ...
 *     }
 *     ... cfq->fq_vars_grad(g, x, n, -3.0f, 3.0f, 8, 0, dx, &dmin, &dmax, NULL) ...
 *
 * The extension compiles no SIMD code and links nothing of cfq: the calls
 * go through the table of the installed cfq module, with its run-time
 * dispatch.  The functions run without the GIL.
 */
#ifndef CFQ_IMPORT_H
#define CFQ_IMPORT_H

#include <Python.h>

#include "cfq.h"

#define CFQ_CAPSULE_NAME "cfq._core._C_API"

/* The installed cfq's table, or NULL with ImportError set.  Call with the
 * GIL held, typically from the module's init function. */
static const cfq_capi *cfq_import(void)
{
    PyObject *module, *capsule;
    const cfq_capi *api;

    module = PyImport_ImportModule("cfq._core");
    if (module == NULL)
        return NULL;
    capsule = PyObject_GetAttrString(module, "_C_API");
    Py_DECREF(module);
    if (capsule == NULL) {
        PyErr_SetString(PyExc_ImportError, "cfq._core has no _C_API capsule: cfq is too old");
        return NULL;
    }
    api = (const cfq_capi *)PyCapsule_GetPointer(capsule, CFQ_CAPSULE_NAME);
    Py_DECREF(capsule);
    if (api == NULL) {
        PyErr_Clear();
        PyErr_SetString(PyExc_ImportError, "cfq._core._C_API is not a cfq C API capsule");
        return NULL;
    }
    /* Tables only grow (see cfq.h): a newer cfq serves older extensions. */
    if (api->abi_version < CFQ_CAPI_VERSION || api->size < sizeof(cfq_capi)) {
        PyErr_Format(PyExc_ImportError,
                     "cfq C API too old: this extension was built against version %d "
                     "(table of %d bytes), the installed cfq provides version %u (%u bytes); "
                     "upgrade cfq, or rebuild the extension against the installed one",
                     CFQ_CAPI_VERSION, (int)sizeof(cfq_capi), api->abi_version, api->size);
        return NULL;
    }
    return api;
}

#endif /* CFQ_IMPORT_H */
