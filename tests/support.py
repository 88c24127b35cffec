"""Helpers the test files share: exact (bit) comparisons and the ISA paths
this machine runs.  Imported by name from the test files (the tests folder
is on sys.path through conftest.py), never from conftest itself."""
import numpy as np

import cfq

ISAS = cfq.available_isas()


def bits(a):
    """float32 values as their uint32 bit patterns, for exact comparisons."""
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32)).view(np.uint32)


def assert_bits_equal(got, want, what=""):
    got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    gb, wb = bits(got), bits(want)
    bad = np.flatnonzero(gb.ravel() != wb.ravel())
    assert bad.size == 0, (
        f"{what}: {bad.size} of {gb.size} elements differ; first at {bad[0]}: "
        f"got {gb.ravel()[bad[0]]:08x} want {wb.ravel()[bad[0]]:08x}")
