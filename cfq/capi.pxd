# capi.pxd -- cfq's C API for Cython code, through the function table the
# installed cfq module exports (no SIMD code compiled, nothing linked):
#
#     from cfq.capi cimport cfq_capi, cfq_import, cfq_exec
#     cdef const cfq_capi *cfq = cfq_import()      # at module init
#     with nogil:
#         rc = cfq.fq_vars_grad(&g[0], &x[0], n, -3.0, 3.0, 8, 0, &dx[0], &dmin, &dmax, NULL)
#
# Build with include_dirs=[cfq.get_include()].  Every table function runs
# without the GIL; error codes and constants are those of cfq.h.

cdef extern from "cfq_import.h":
    int CFQ_OK
    int CFQ_ISA_AUTO
    int CFQ_CAPI_VERSION
    int CFQ_FLOAT32
    int CFQ_FLOAT16
    int CFQ_BFLOAT16

    ctypedef struct cfq_exec:
        int isa
        int threads

    ctypedef struct cfq_capi:
        unsigned abi_version
        unsigned size
        const char *(*version)() nogil
        const char *(*strerror)(int code) nogil
        int (*active_isa)() nogil
        int (*isa_available)(int isa) nogil
        const char *(*isa_name)(int isa) nogil
        int (*nudge)(float min, float max, int num_bits, int narrow_range, float *nudged_min,
                     float *nudged_max, float *scale) nogil
        int (*fq_vars_grad)(const float *gradients, const float *inputs, size_t n, float min,
                            float max, int num_bits, int narrow_range, float *backprops_wrt_input,
                            float *backprop_wrt_min, float *backprop_wrt_max,
                            const cfq_exec *exec) nogil
        int (*fq_vars)(const float *inputs, size_t n, float min, float max, int num_bits,
                       int narrow_range, float *outputs, const cfq_exec *exec) nogil
        int (*fq_args)(const float *inputs, size_t n, float min, float max, int num_bits,
                       int narrow_range, float *outputs, const cfq_exec *exec) nogil
        int (*fq_args_grad)(const float *gradients, const float *inputs, size_t n, float min,
                            float max, int num_bits, int narrow_range, float *backprops,
                            const cfq_exec *exec) nogil
        int (*fq_per_channel)(const float *inputs, size_t outer, size_t channels, size_t inner,
                              const float *min, const float *max, int num_bits,
                              int narrow_range, float *outputs, const cfq_exec *exec) nogil
        int (*fq_per_channel_grad)(const float *gradients, const float *inputs, size_t outer,
                                   size_t channels, size_t inner, const float *min,
                                   const float *max, int num_bits, int narrow_range,
                                   float *backprops_wrt_input, float *backprop_wrt_min,
                                   float *backprop_wrt_max, const cfq_exec *exec) nogil
        int (*fq_vars_and_region)(const float *inputs, size_t n, float min, float max,
                                  int num_bits, int narrow_range, float *outputs,
                                  unsigned char *region, const cfq_exec *exec) nogil
        int (*fq_region_grad)(const float *gradients, const unsigned char *region, size_t n,
                              float *backprops_wrt_input, float *backprop_wrt_min,
                              float *backprop_wrt_max, const cfq_exec *exec) nogil
        # Version 2.
        int (*fq_per_channel_and_region)(const float *inputs, size_t outer, size_t channels,
                                         size_t inner, const float *min, const float *max,
                                         int num_bits, int narrow_range, float *outputs,
                                         unsigned char *region, const cfq_exec *exec) nogil
        int (*fq_per_channel_region_grad)(const float *gradients, const unsigned char *region,
                                          size_t outer, size_t channels, size_t inner,
                                          float *backprops_wrt_input, float *backprop_wrt_min,
                                          float *backprop_wrt_max, const cfq_exec *exec) nogil
        int (*fq_vars_grad_typed)(int dtype, const void *gradients, const void *inputs, size_t n,
                                  float min, float max, int num_bits, int narrow_range,
                                  void *backprops_wrt_input, float *backprop_wrt_min,
                                  float *backprop_wrt_max, const cfq_exec *exec) nogil
        int (*fq_vars_typed)(int dtype, const void *inputs, size_t n, float min, float max,
                             int num_bits, int narrow_range, void *outputs,
                             const cfq_exec *exec) nogil
        int (*fq_args_typed)(int dtype, const void *inputs, size_t n, float min, float max,
                             int num_bits, int narrow_range, void *outputs,
                             const cfq_exec *exec) nogil
        int (*fq_args_grad_typed)(int dtype, const void *gradients, const void *inputs, size_t n,
                                  float min, float max, int num_bits, int narrow_range,
                                  void *backprops, const cfq_exec *exec) nogil
        int (*fq_per_channel_typed)(int dtype, const void *inputs, size_t outer, size_t channels,
                                    size_t inner, const float *min, const float *max,
                                    int num_bits, int narrow_range, void *outputs,
                                    const cfq_exec *exec) nogil
        int (*fq_per_channel_grad_typed)(int dtype, const void *gradients, const void *inputs,
                                         size_t outer, size_t channels, size_t inner,
                                         const float *min, const float *max, int num_bits,
                                         int narrow_range, void *backprops_wrt_input,
                                         float *backprop_wrt_min, float *backprop_wrt_max,
                                         const cfq_exec *exec) nogil
        int (*fq_vars_and_region_typed)(int dtype, const void *inputs, size_t n, float min,
                                        float max, int num_bits, int narrow_range, void *outputs,
                                        unsigned char *region, const cfq_exec *exec) nogil
        int (*fq_region_grad_typed)(int dtype, const void *gradients, const unsigned char *region,
                                    size_t n, void *backprops_wrt_input, float *backprop_wrt_min,
                                    float *backprop_wrt_max, const cfq_exec *exec) nogil
        int (*fq_per_channel_and_region_typed)(int dtype, const void *inputs, size_t outer,
                                               size_t channels, size_t inner, const float *min,
                                               const float *max, int num_bits, int narrow_range,
                                               void *outputs, unsigned char *region,
                                               const cfq_exec *exec) nogil
        int (*fq_per_channel_region_grad_typed)(int dtype, const void *gradients,
                                                const unsigned char *region, size_t outer,
                                                size_t channels, size_t inner,
                                                void *backprops_wrt_input, float *backprop_wrt_min,
                                                float *backprop_wrt_max,
                                                const cfq_exec *exec) nogil
        int (*fq_args_and_region)(const float *inputs, size_t n, float min, float max,
                                  int num_bits, int narrow_range, float *outputs,
                                  unsigned char *region, const cfq_exec *exec) nogil
        int (*fq_args_and_region_typed)(int dtype, const void *inputs, size_t n, float min,
                                        float max, int num_bits, int narrow_range, void *outputs,
                                        unsigned char *region, const cfq_exec *exec) nogil

    # With the GIL; NULL with ImportError set on failure.
    const cfq_capi *cfq_import() except NULL
