"""Dispatch: CFQ_ISA, read once at import (forcing each path, and what an
unknown or unavailable name does: a RuntimeWarning and the best path), and
the isa= argument's checks."""
import os
import subprocess
import sys

import numpy as np
import pytest

import cfq
from support import ALL_ISAS, CFQ_PARENT, ISAS, MISSING_ISAS

vg = cfq.fake_quant_with_min_max_vars_gradient


def run(env_value, code="import cfq; print(cfq.active_isa())"):
    env = dict(os.environ, CFQ_ISA=env_value, PYTHONPATH=CFQ_PARENT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-W", "always", "-c", code], env=env,
                       capture_output=True, text=True, check=True)
    return p.stdout.strip(), p.stderr


def test_forcing_each_path(isa):
    out, err = run(isa)
    assert out == isa and "RuntimeWarning" not in err


def test_default_is_best():
    out, _ = run("")
    assert out == ISAS[-1] if "neon" not in ISAS else out == "neon"


@pytest.mark.parametrize("name", ["sse9", "AVX2", "neon" if "neon" not in ISAS else "avx512"])
def test_unknown_or_unavailable_warns_and_falls_back(name):
    if name in ISAS:
        pytest.skip(f"{name} is available here")
    out, err = run(name)
    assert "RuntimeWarning" in err and "CFQ_ISA" in err
    assert out in ISAS


@pytest.mark.parametrize("name", MISSING_ISAS)
def test_unavailable_isa_rejected(name):
    with pytest.raises(ValueError, match="not available"):
        vg(np.zeros(3), np.zeros(3), -1.0, 1.0, isa=name)


def test_isa_name_with_nul_rejected():
    with pytest.raises(ValueError, match="unknown isa"):
        vg(np.zeros(3), np.zeros(3), -1.0, 1.0, isa="scalar\0junk")


def test_available_isas_are_the_known_paths():
    # The suite parametrises over ALL_ISAS: a path cfq gained and support.py
    # does not name would go untested without a word.
    got = cfq.available_isas()
    assert got[0] == "scalar" and set(got) <= set(ALL_ISAS) and cfq.active_isa() in got
    assert got == [name for name in ALL_ISAS if name in got]  # in cfq's order
