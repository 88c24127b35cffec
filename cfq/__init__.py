"""cfq: TensorFlow-exact fake quantization, without TensorFlow.

The kernels are a C99 core with scalar, AVX2, AVX-512 and NEON paths chosen
at run time; every path gives the same bits as TensorFlow 2.21 on the CPU.
Set the environment variable CFQ_ISA=scalar|avx2|avx512|neon before import to
force a path; a name that is unknown or not runnable here warns and falls
back to the best available path.
"""
import os
import warnings

from cfq._core import (
    C_VERSION as __version__,
    FakeQuantWithMinMaxVarsGradient,
    FakeQuantWithMinMaxVarsPerChannelGradient,
    _isa_env_status,
    active_isa,
    available_isas,
    fake_quant_with_min_max_args,
    fake_quant_with_min_max_args_and_region,
    fake_quant_with_min_max_args_gradient,
    fake_quant_per_channel_region_gradient,
    fake_quant_region_gradient,
    fake_quant_with_min_max_vars,
    fake_quant_with_min_max_vars_and_region,
    fake_quant_with_min_max_vars_gradient,
    fake_quant_with_min_max_vars_per_channel,
    fake_quant_with_min_max_vars_per_channel_and_region,
    fake_quant_with_min_max_vars_per_channel_gradient,
    nudge,
)

__all__ = [
    "FakeQuantWithMinMaxVarsGradient",
    "FakeQuantWithMinMaxVarsPerChannelGradient",
    "active_isa",
    "available_isas",
    "fake_quant_with_min_max_args",
    "fake_quant_with_min_max_args_and_region",
    "fake_quant_with_min_max_args_gradient",
    "fake_quant_per_channel_region_gradient",
    "fake_quant_region_gradient",
    "fake_quant_with_min_max_vars",
    "fake_quant_with_min_max_vars_and_region",
    "fake_quant_with_min_max_vars_gradient",
    "fake_quant_with_min_max_vars_per_channel",
    "fake_quant_with_min_max_vars_per_channel_and_region",
    "fake_quant_with_min_max_vars_per_channel_gradient",
    "get_include",
    "nudge",
]


def get_include():
    """The folder holding cfq.h (and cfq's .pxd), for C and Cython users."""
    here = os.path.dirname(os.path.abspath(__file__))
    packaged = os.path.join(here, "include")
    if os.path.exists(os.path.join(packaged, "cfq.h")):
        return packaged
    return os.path.join(os.path.dirname(here), "src")  # a source checkout


if _isa_env_status() != 0:
    warnings.warn(
        f"CFQ_ISA={os.environ.get('CFQ_ISA')!r} is unknown or not available on this CPU "
        f"(available: {', '.join(available_isas())}); using {active_isa()!r}",
        RuntimeWarning,
        stacklevel=2,
    )
