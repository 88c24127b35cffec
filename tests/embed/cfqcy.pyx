# cython: language_level=3
# A Cython module that cimports cfq's C API (cfq/capi.pxd) and calls the
# dispatched kernels without the GIL.
from cfq.capi cimport cfq_capi, cfq_import, CFQ_OK

cdef const cfq_capi *cfq = cfq_import()


def grad(const float[::1] g, const float[::1] x, float[::1] dx, float mn, float mx, int bits):
    cdef float dmin = 0, dmax = 0
    cdef int rc
    with nogil:
        rc = cfq.fq_vars_grad(&g[0], &x[0], g.shape[0], mn, mx, bits, 0, &dx[0], &dmin, &dmax, NULL)
    return rc == CFQ_OK, dmin, dmax
