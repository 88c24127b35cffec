"""Reader for the golden data in tests/golden/*.npz (written by
tools/make_golden.py).

Layout of each .npz ("layout" == "concat-v1"):

  n_cases              int64 0-d
  layout               unicode 0-d, "concat-v1"
  meta_*               0-d values (TF / NumPy version, seed, ...)
  error                unicode, one entry per case: the TF exception class
                       name, or "" if TF did not raise for that case
  for every other field F (gradients, inputs, min, max, num_bits,
  narrow_range and the outputs):
    F                  1-D: all cases' values, flattened (C order) and
                       concatenated (float32 / int32 / bool)
    F__offsets         int64, n_cases + 1: case i is F[off[i]:off[i+1]]
    F__ndim            int8, n_cases: rank of case i's array, -1 if the
                       case has no such field
    F__dims            int64: the shapes of the present cases, concatenated

Public API:

  load_cases(name, directory=None) -> list[dict]
      One dict per case: {field: np.ndarray (exact dtype and shape; scalars
      0-d), ..., "id": i}.  Fields a case does not have are absent (e.g. an
      error case has "error", a 0-d unicode array, and no outputs).
  load_meta(name, directory=None) -> dict
      {"meta_...": value} with the 0-d meta values as Python scalars / str.

name is "vars_grad", "vars", "args" or "per_channel"; directory defaults to
tests/golden next to this file.
"""

from pathlib import Path

import numpy as np

GOLDEN = Path(__file__).parent / "golden"
LAYOUT = "concat-v1"


def _path(name, directory):
    return Path(GOLDEN if directory is None else directory) / f"{name}.npz"


def _read(name, directory):
    with np.load(_path(name, directory), allow_pickle=False) as d:
        data = {k: d[k] for k in d.files}
    layout = str(data.get("layout", ""))
    if layout != LAYOUT:
        raise ValueError(f"{_path(name, directory)}: layout {layout!r}, "
                         f"expected {LAYOUT!r} (regenerate with "
                         f"tools/make_golden.py)")
    return data


def load_meta(name, directory=None):
    data = _read(name, directory)
    return {k: v.item() for k, v in data.items() if k.startswith("meta_")}


def load_cases(name, directory=None):
    data = _read(name, directory)
    n = int(data["n_cases"])
    cases = [{} for _ in range(n)]
    fields = [k[:-len("__ndim")] for k in data if k.endswith("__ndim")]
    for f in fields:
        values = data[f]
        offsets = data[f + "__offsets"]
        ndims = data[f + "__ndim"]
        dims = data[f + "__dims"]
        assert values.ndim == 1 and offsets.shape == (n + 1,), f
        assert ndims.shape == (n,), f
        assert offsets[-1] == values.size, f
        p = 0  # position in dims
        for i in range(n):
            nd = int(ndims[i])
            if nd < 0:
                assert offsets[i] == offsets[i + 1], (f, i)
                continue
            shape = tuple(int(v) for v in dims[p:p + nd])
            p += nd
            a = values[offsets[i]:offsets[i + 1]].reshape(shape).copy()
            cases[i][f] = a
        assert p == dims.size, f
    if "error" in data:
        err = data["error"]
        assert err.shape == (n,), "error"
        for i in range(n):
            s = str(err[i])
            if s:
                cases[i]["error"] = np.array(s)
    # Same key order as the old per-case layout: fields in file order.
    order = fields + ["error"]
    out = []
    for i, c in enumerate(cases):
        case = {k: c[k] for k in order if k in c}
        case["id"] = i
        out.append(case)
    return out
