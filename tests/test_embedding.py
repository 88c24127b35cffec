"""cfq as other code meets it: a C extension through the C API capsule, a
Cython module that cimports cfq.capi, and a C program linked with libcfq.a.
Each is compiled during the test session against the cfq being tested
(installed or built in place)."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import cfq
from support import CFQ_PARENT, assert_bits_equal

HERE = os.path.dirname(os.path.abspath(__file__))
EMBED = os.path.join(HERE, "embed")
ROOT = os.path.dirname(HERE)
needs_cc = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                              reason="no C compiler")


def data(n=1000):
    rng = np.random.default_rng(7)
    return rng.standard_normal(n).astype(np.float32), (rng.standard_normal(n) * 2).astype(np.float32)


def build(tmp_path, sources, cython=False):
    """Builds an extension in tmp_path with setuptools, in a subprocess."""
    for src in sources:
        shutil.copy(os.path.join(EMBED, src), tmp_path)
    name = os.path.splitext(sources[0])[0]
    ext = f"Extension({name!r}, [{sources[0]!r}], include_dirs=[{cfq.get_include()!r}])"
    if cython:
        ext = f"cythonize([{ext}], include_path=[{CFQ_PARENT!r}])"
    else:
        ext = f"[{ext}]"
    (tmp_path / "setup.py").write_text(
        "from setuptools import setup, Extension\n"
        + ("from Cython.Build import cythonize\n" if cython else "")
        + f"setup(name={name!r}, ext_modules={ext})\n")
    env = dict(os.environ, PYTHONPATH=CFQ_PARENT)
    p = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=tmp_path,
                       env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(tmp_path))


def test_get_include_has_headers():
    inc = cfq.get_include()
    assert os.path.isfile(os.path.join(inc, "cfq.h"))
    assert os.path.isfile(os.path.join(inc, "cfq_import.h"))


def test_capsule_is_versioned():
    import cfq._core
    assert type(cfq._core._C_API).__name__ == "PyCapsule"
    assert "cfq._core._C_API" in repr(cfq._core._C_API)


@needs_cc
def test_c_extension_through_capsule(tmp_path):
    pytest.importorskip("setuptools")
    mod = build(tmp_path, ["cfqext.c"])
    version, isa, abi = mod.describe()
    assert version == cfq.__version__ and isa == cfq.active_isa() and abi == 2  # CFQ_CAPI_VERSION
    g, x = data()
    dx = np.empty_like(g)
    rc, dmin, dmax = mod.grad(g, x, dx, -1.5, 1.5, 8)
    assert rc == 0
    want = cfq.fake_quant_with_min_max_vars_gradient(g, x, -1.5, 1.5)
    assert_bits_equal(dx, want[0])
    assert_bits_equal(np.float32(dmin), want[1])
    assert_bits_equal(np.float32(dmax), want[2])
    rc, _, _ = mod.grad(g, x, dx, -1.5, 1.5, 1)
    assert rc == -2  # CFQ_ENUMBITS, returned as a code, never an abort


@needs_cc
def test_cython_module_cimports_cfq(tmp_path):
    pytest.importorskip("Cython")
    mod = build(tmp_path, ["cfqcy.pyx"], cython=True)
    g, x = data()
    dx = np.empty_like(g)
    ok, dmin, dmax = mod.grad(g, x, dx, -1.0, 2.0, 6)
    assert ok
    want = cfq.fake_quant_with_min_max_vars_gradient(g, x, -1.0, 2.0, 6)
    assert_bits_equal(dx, want[0])
    assert_bits_equal(np.float32(dmin), want[1])


@needs_cc
@pytest.mark.skipif(not os.path.isfile(os.path.join(ROOT, "Makefile")) or shutil.which("make") is None,
                    reason="needs the source tree's Makefile (make lib)")
def test_c_program_linked_with_libcfq(tmp_path):
    p = subprocess.run(["make", "-s", "-C", ROOT, "lib"], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    exe = tmp_path / "main"
    p = subprocess.run(["cc", "-std=c99", "-O2", "-I", os.path.join(ROOT, "src"), os.path.join(EMBED, "main.c"),
                        os.path.join(ROOT, "build", "libcfq.a"), "-lm", "-pthread", "-o", str(exe)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()
    assert out[0].startswith("isa=")
    i = np.arange(1000)
    g = (((i * 37) % 101).astype(np.float32) / np.float32(25.0) - np.float32(2.0)).astype(np.float32)
    x = (((i * 53) % 97).astype(np.float32) / np.float32(12.0) - np.float32(4.0)).astype(np.float32)
    want = cfq.fake_quant_with_min_max_vars_gradient(g, x, -3.0, 3.0)
    assert float.fromhex(out[1].split("=")[1]) == float(want[1])
    assert float.fromhex(out[2].split("=")[1]) == float(want[2])
    for k, v in zip(range(0, 1000, 111), out[3:]):
        assert float.fromhex(v) == float(want[0][k])
