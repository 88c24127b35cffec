# ccfq.pxd -- the C API of cfq (src/cfq.h) for Cython code.
#
#     from cfq.ccfq cimport cfq_fq_vars_grad, CFQ_OK
#
# Every function here is safe to call without the GIL.

cdef extern from "cfq.h" nogil:
    int CFQ_VERSION_MAJOR
    int CFQ_VERSION_MINOR
    int CFQ_VERSION_PATCH

    int CFQ_OK
    int CFQ_ENULL
    int CFQ_ENUMBITS
    int CFQ_ENONFINITE
    int CFQ_EMINMAX
    int CFQ_EISA_UNKNOWN
    int CFQ_EISA_UNAVAILABLE
    int CFQ_ETHREADS
    int CFQ_ENOMEM
    int CFQ_ESHAPE
    int CFQ_EREGION
    int CFQ_EDTYPE

    int CFQ_FLOAT32
    int CFQ_FLOAT16
    int CFQ_BFLOAT16

    int CFQ_REGION_INSIDE
    int CFQ_REGION_BELOW
    int CFQ_REGION_ABOVE
    int CFQ_REGION_NONE
    int CFQ_REGION_PASS

    int CFQ_ISA_AUTO
    int CFQ_ISA_SCALAR
    int CFQ_ISA_AVX2
    int CFQ_ISA_AVX512
    int CFQ_ISA_NEON
    int CFQ_ISA_COUNT
    int CFQ_MAX_THREADS

    ctypedef struct cfq_exec:
        int isa
        int threads

    const char *cfq_strerror(int code)
    const char *cfq_version()
    int cfq_active_isa()
    int cfq_isa_env_status()
    int cfq_isa_available(int isa)
    const char *cfq_isa_name(int isa)
    int cfq_isa_from_name(const char *name)

    int cfq_nudge(float min, float max, int num_bits, int narrow_range,
                  float *nudged_min, float *nudged_max, float *scale)

    int cfq_fq_vars_grad(const float *gradients, const float *inputs, size_t n,
                         float min, float max, int num_bits, int narrow_range,
                         float *backprops_wrt_input, float *backprop_wrt_min,
                         float *backprop_wrt_max, const cfq_exec *exec)

    int cfq_fq_vars(const float *inputs, size_t n, float min, float max, int num_bits,
                    int narrow_range, float *outputs, const cfq_exec *exec)
    int cfq_fq_args(const float *inputs, size_t n, float min, float max, int num_bits,
                    int narrow_range, float *outputs, const cfq_exec *exec)
    int cfq_fq_args_grad(const float *gradients, const float *inputs, size_t n, float min,
                         float max, int num_bits, int narrow_range, float *backprops,
                         const cfq_exec *exec)
    int cfq_fq_per_channel(const float *inputs, size_t outer, size_t channels, size_t inner,
                           const float *min, const float *max, int num_bits, int narrow_range,
                           float *outputs, const cfq_exec *exec)
    int cfq_fq_per_channel_grad(const float *gradients, const float *inputs, size_t outer,
                                size_t channels, size_t inner, const float *min, const float *max,
                                int num_bits, int narrow_range, float *backprops_wrt_input,
                                float *backprop_wrt_min, float *backprop_wrt_max,
                                const cfq_exec *exec)

    ctypedef struct cfq_capi:
        unsigned abi_version
        unsigned size
    const cfq_capi *cfq_capi_table()

    int cfq_fq_vars_and_region(const float *inputs, size_t n, float min, float max,
                               int num_bits, int narrow_range, float *outputs,
                               unsigned char *region, const cfq_exec *exec)
    int cfq_fq_region_grad(const float *gradients, const unsigned char *region, size_t n,
                           float *backprops_wrt_input, float *backprop_wrt_min,
                           float *backprop_wrt_max, const cfq_exec *exec)
    int cfq_fq_args_and_region(const float *inputs, size_t n, float min, float max,
                               int num_bits, int narrow_range, float *outputs,
                               unsigned char *region, const cfq_exec *exec)

    int cfq_fq_per_channel_and_region(const float *inputs, size_t outer, size_t channels,
                                      size_t inner, const float *min, const float *max,
                                      int num_bits, int narrow_range, float *outputs,
                                      unsigned char *region, const cfq_exec *exec)
    int cfq_fq_per_channel_region_grad(const float *gradients, const unsigned char *region,
                                       size_t outer, size_t channels, size_t inner,
                                       float *backprops_wrt_input, float *backprop_wrt_min,
                                       float *backprop_wrt_max, const cfq_exec *exec)

    # The same ops on a dtype (CFQ_FLOAT32, CFQ_FLOAT16, CFQ_BFLOAT16).
    int cfq_fq_vars_grad_typed(int dtype, const void *gradients, const void *inputs, size_t n,
                               float min, float max, int num_bits, int narrow_range,
                               void *backprops_wrt_input, float *backprop_wrt_min,
                               float *backprop_wrt_max, const cfq_exec *exec)
    int cfq_fq_vars_typed(int dtype, const void *inputs, size_t n, float min, float max,
                          int num_bits, int narrow_range, void *outputs, const cfq_exec *exec)
    int cfq_fq_args_typed(int dtype, const void *inputs, size_t n, float min, float max,
                          int num_bits, int narrow_range, void *outputs, const cfq_exec *exec)
    int cfq_fq_args_grad_typed(int dtype, const void *gradients, const void *inputs, size_t n,
                               float min, float max, int num_bits, int narrow_range,
                               void *backprops, const cfq_exec *exec)
    int cfq_fq_per_channel_typed(int dtype, const void *inputs, size_t outer, size_t channels,
                                 size_t inner, const float *min, const float *max, int num_bits,
                                 int narrow_range, void *outputs, const cfq_exec *exec)
    int cfq_fq_per_channel_grad_typed(int dtype, const void *gradients, const void *inputs,
                                      size_t outer, size_t channels, size_t inner,
                                      const float *min, const float *max, int num_bits,
                                      int narrow_range, void *backprops_wrt_input,
                                      float *backprop_wrt_min, float *backprop_wrt_max,
                                      const cfq_exec *exec)
    int cfq_fq_vars_and_region_typed(int dtype, const void *inputs, size_t n, float min,
                                     float max, int num_bits, int narrow_range, void *outputs,
                                     unsigned char *region, const cfq_exec *exec)
    int cfq_fq_region_grad_typed(int dtype, const void *gradients, const unsigned char *region,
                                 size_t n, void *backprops_wrt_input, float *backprop_wrt_min,
                                 float *backprop_wrt_max, const cfq_exec *exec)
    int cfq_fq_args_and_region_typed(int dtype, const void *inputs, size_t n, float min,
                                     float max, int num_bits, int narrow_range, void *outputs,
                                     unsigned char *region, const cfq_exec *exec)
    int cfq_fq_per_channel_and_region_typed(int dtype, const void *inputs, size_t outer,
                                            size_t channels, size_t inner, const float *min,
                                            const float *max, int num_bits, int narrow_range,
                                            void *outputs, unsigned char *region,
                                            const cfq_exec *exec)
    int cfq_fq_per_channel_region_grad_typed(int dtype, const void *gradients,
                                             const unsigned char *region, size_t outer,
                                             size_t channels, size_t inner,
                                             void *backprops_wrt_input, float *backprop_wrt_min,
                                             float *backprop_wrt_max, const cfq_exec *exec)
