from typing import Any, NamedTuple, Optional, Tuple

import numpy as np
import numpy.typing as npt

__version__: str

# Element arrays come back in the inputs' dtype: float32, or float16 /
# bfloat16 (ml_dtypes) as given; the min/max gradients are always float32.
_Elements = npt.NDArray[Any]

class FakeQuantWithMinMaxVarsGradient(NamedTuple):
    backprops_wrt_input: _Elements
    backprop_wrt_min: npt.NDArray[np.float32]
    backprop_wrt_max: npt.NDArray[np.float32]

class FakeQuantWithMinMaxVarsPerChannelGradient(NamedTuple):
    backprops_wrt_input: _Elements
    backprop_wrt_min: npt.NDArray[np.float32]
    backprop_wrt_max: npt.NDArray[np.float32]

_Scalar = Any  # a real Python number, NumPy scalar or 0-d array

def fake_quant_with_min_max_vars_gradient(
    gradients: npt.ArrayLike, inputs: npt.ArrayLike, min: _Scalar, max: _Scalar, num_bits: int = 8,
    narrow_range: bool = False, name: Optional[str] = None, *, out: Optional[np.ndarray] = None,
    threads: Optional[int] = None, isa: Optional[str] = None) -> FakeQuantWithMinMaxVarsGradient: ...
def fake_quant_with_min_max_vars(
    inputs: npt.ArrayLike, min: _Scalar, max: _Scalar, num_bits: int = 8, narrow_range: bool = False,
    name: Optional[str] = None, *, out: Optional[np.ndarray] = None, threads: Optional[int] = None,
    isa: Optional[str] = None) -> _Elements: ...
def fake_quant_with_min_max_args(
    inputs: npt.ArrayLike, min: float = -6.0, max: float = 6.0, num_bits: int = 8,
    narrow_range: bool = False, name: Optional[str] = None, *, out: Optional[np.ndarray] = None,
    threads: Optional[int] = None, isa: Optional[str] = None) -> _Elements: ...
def fake_quant_with_min_max_args_gradient(
    gradients: npt.ArrayLike, inputs: npt.ArrayLike, min: float = -6.0, max: float = 6.0,
    num_bits: int = 8, narrow_range: bool = False, name: Optional[str] = None, *,
    out: Optional[np.ndarray] = None, threads: Optional[int] = None,
    isa: Optional[str] = None) -> _Elements: ...
def fake_quant_with_min_max_vars_per_channel(
    inputs: npt.ArrayLike, min: npt.ArrayLike, max: npt.ArrayLike, num_bits: int = 8,
    narrow_range: bool = False, name: Optional[str] = None, *, axis: int = -1,
    out: Optional[np.ndarray] = None, threads: Optional[int] = None,
    isa: Optional[str] = None) -> _Elements: ...
def fake_quant_with_min_max_vars_per_channel_gradient(
    gradients: npt.ArrayLike, inputs: npt.ArrayLike, min: npt.ArrayLike, max: npt.ArrayLike,
    num_bits: int = 8, narrow_range: bool = False, name: Optional[str] = None, *, axis: int = -1,
    out: Optional[np.ndarray] = None, threads: Optional[int] = None,
    isa: Optional[str] = None) -> FakeQuantWithMinMaxVarsPerChannelGradient: ...
def fake_quant_with_min_max_vars_per_channel_and_region(
    inputs: npt.ArrayLike, min: npt.ArrayLike, max: npt.ArrayLike, num_bits: int = 8,
    narrow_range: bool = False, name: Optional[str] = None, *, axis: int = -1,
    out: Optional[np.ndarray] = None, threads: Optional[int] = None,
    isa: Optional[str] = None) -> Tuple[_Elements, npt.NDArray[np.uint8]]: ...
def fake_quant_per_channel_region_gradient(
    gradients: npt.ArrayLike, region: npt.NDArray[np.uint8], *, axis: int = -1,
    out: Optional[np.ndarray] = None, threads: Optional[int] = None,
    isa: Optional[str] = None) -> FakeQuantWithMinMaxVarsPerChannelGradient: ...
def fake_quant_with_min_max_vars_and_region(
    inputs: npt.ArrayLike, min: _Scalar, max: _Scalar, num_bits: int = 8, narrow_range: bool = False,
    name: Optional[str] = None, *, out: Optional[np.ndarray] = None, threads: Optional[int] = None,
    isa: Optional[str] = None) -> Tuple[_Elements, npt.NDArray[np.uint8]]: ...
def fake_quant_with_min_max_args_and_region(
    inputs: npt.ArrayLike, min: float = -6.0, max: float = 6.0, num_bits: int = 8,
    narrow_range: bool = False, name: Optional[str] = None, *, out: Optional[np.ndarray] = None,
    threads: Optional[int] = None, isa: Optional[str] = None) -> Tuple[_Elements, npt.NDArray[np.uint8]]: ...
def fake_quant_region_gradient(
    gradients: npt.ArrayLike, region: npt.NDArray[np.uint8], *, out: Optional[np.ndarray] = None,
    threads: Optional[int] = None, isa: Optional[str] = None) -> FakeQuantWithMinMaxVarsGradient: ...
def nudge(min: _Scalar, max: _Scalar, num_bits: int = 8,
          narrow_range: bool = False) -> Tuple[np.float32, np.float32, np.float32]: ...
def active_isa() -> str: ...
def available_isas() -> list[str]: ...
def get_include() -> str: ...
