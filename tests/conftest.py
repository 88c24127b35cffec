"""pytest set-up for the whole suite: the tests folder on sys.path (so test
files import support, model and golden_io by name), the `isa`
parametrisation over all four paths, the hypothesis profiles, and the check
that no test leaves the FP control register changed.  Test files never
import this file; shared helpers live in support.py."""
import os
import sys

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(__file__))

import cfq._core  # noqa: E402
from support import ARCH, ISA_PARAMS  # noqa: E402

# ---- hypothesis profiles -------------------------------------------------------
# "cfq" is the suite's: 150 examples per test (the count the fuzz tests
# always had; the whole suite runs in about 20 s; tests parametrised over
# `isa` share theirs among the paths, support.shared_among_paths), no
# deadline (the time of one example on a shared, noisy CI machine says
# nothing about cfq), and the health checks the generators need off: the
# fuzz generators draw large arrays through filtering strategies on purpose.
# "fuzz" is the long run (`make fuzz`): 20000 examples per test.
# Choose one with CFQ_HYPOTHESIS_PROFILE=fuzz or hypothesis's own
# --hypothesis-profile=fuzz (which wins when both are given).
settings.register_profile(
    "cfq", max_examples=150, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
settings.register_profile("fuzz", parent=settings.get_profile("cfq"), max_examples=20000)
settings.load_profile(os.environ.get("CFQ_HYPOTHESIS_PROFILE", "cfq"))


# ---- every path, the ones this machine cannot run shown as skipped ---------------
# A test asks for `isa` by naming the argument; in a @given test name it
# first, since given's positional strategies fill the rightmost arguments.
# Direct parametrisation, not a parametrised fixture: hypothesis refuses
# function-scoped fixtures in @given tests, and a module- or session-scoped
# one would reorder the run.
def pytest_generate_tests(metafunc):
    if "isa" in metafunc.fixturenames:
        metafunc.parametrize("isa", ISA_PARAMS)


# ---- the FP control register is left as found --------------------------------------
# cfq sets its own FP environment (FTZ/DAZ, rounding) around every call and
# must restore it.  On x86 only MXCSR's control bits are compared: bits 0-5
# are sticky exception flags that any NumPy float operation may set.  FPCR
# (AArch64) holds no flags.  Elsewhere cfq reads 0, and the check is void.
if ARCH == "x86":
    FP_REGISTER, FP_COMPARED = "MXCSR", ~0x3F
    FP_NOTE = " (compared without bits 0-5, the sticky exception flags)"
else:
    FP_REGISTER, FP_COMPARED, FP_NOTE = ("FPCR" if ARCH == "arm64" else "the FP control register"), ~0, ""


@pytest.fixture(autouse=True)
def check_fp_control():
    before = cfq._core._fp_control()
    yield
    after = cfq._core._fp_control()
    if (before ^ after) & FP_COMPARED:
        raise AssertionError(
            f"{FP_REGISTER} changed during the test: {before:#x} before, {after:#x} after{FP_NOTE}")
