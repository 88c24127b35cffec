"""The PyTorch section of cfq's benchmark (``python -m cfq.bench`` runs it
when torch is importable; ``python -m cfq.bench_torch`` alone).

Forward+backward of ``cfq.torch.fake_quant_with_min_max_vars`` (min/max 0-d
tensors that require grad: TF's learned-range QAT, so it computes the input
gradient and both range gradients) against PyTorch's
``torch.fake_quantize_per_tensor_affine`` (fixed scale and zero point: input
gradient only) and ``torch._fake_quantize_learnable_per_tensor_affine``
(scale and zero point learned), on the same data and range
(min/max = -3, 3, i.e. scale 6/255, zero point 128), with one thread and
with torch's default thread count, on float32, float16 and bfloat16 tensors
(each contender on the row's dtype: torch's fixed op runs on all three on
the CPU, its learnable op has no float16 backward there and runs on
``x.float()`` with the result cast back, the casts timed, marked ``*``); at 1K, against the autograd engine's own
floor, ``(x * 1.0).backward(g)``; and the bytes each keeps for backward per
element, counted with ``torch.autograd.graph.saved_tensors_hooks``.  Every
call is ``y = op(x, ...); y.backward(g)`` with the leaves' ``.grad`` reset
first (no accumulation), and every time a median of interleaved repetitions
whose samples last at least SAMPLE_S = 10 ms: with cfq.bench's 2 ms a sample
holds one or two 1M-element calls, and the first call after another op's
sweep over memory runs with cold caches (cfq.torch at 1M: 0.7-0.9 ms then,
0.5 ms in a run of calls), so the ratios at 1M moved between 4 and 6.4
rather than 8.1 and 8.6 (PyTorch's ops, 4-6 ms a call at 1M, change little).
"""
import argparse

import numpy as np

try:
    import torch
except ImportError:  # the section is skipped with a note
    torch = None

from cfq.bench import fmt_size, interleaved_medians, make_data, parse_size, reps_for

MIN_, MAX_ = -3.0, 3.0
QMIN, QMAX = 0, 255
SCALE = (MAX_ - MIN_) / (QMAX - QMIN)
ZERO_POINT = int(round(QMIN - MIN_ / SCALE))
MAX_SIZE = 16 << 20
SAMPLE_S = 10e-3


def _learnable_casts(dtype):
    """Whether torch's learnable op must run on float32 between casts for
    this dtype (its CPU backward takes float32 and bfloat16, not float16)."""
    if dtype in _LEARNABLE_CASTS:
        return _LEARNABLE_CASTS[dtype]
    x = torch.zeros(8, dtype=dtype, requires_grad=True)
    scale, zp = torch.tensor([SCALE], requires_grad=True), torch.tensor([float(ZERO_POINT)], requires_grad=True)
    try:
        torch._fake_quantize_learnable_per_tensor_affine(x, scale, zp, QMIN, QMAX, 1.0).sum().backward()
        casts = False
    except RuntimeError:
        casts = True
    _LEARNABLE_CASTS[dtype] = casts
    return casts


_LEARNABLE_CASTS = {}


class _Case:
    """The tensors of one size and dtype, and each contender's
    forward+backward on them (every contender on the same dtype; see
    _learnable_casts)."""

    def __init__(self, n, dtype=None):
        import cfq.torch as cfqt
        dtype = dtype or torch.float32
        g, x = make_data(n)
        self.g = torch.from_numpy(g).to(dtype)
        self.x = torch.from_numpy(x).to(dtype).requires_grad_()
        self.lo = torch.tensor(MIN_, requires_grad=True)
        self.hi = torch.tensor(MAX_, requires_grad=True)
        self.scale = torch.tensor([SCALE], requires_grad=True)
        self.zp = torch.tensor([float(ZERO_POINT)], requires_grad=True)
        self.fq = cfqt.fake_quant_with_min_max_vars
        self.dtype = dtype
        self.learnable_casts = _learnable_casts(dtype)

    def _reset(self, *leaves):
        for t in leaves:
            t.grad = None

    def cfq(self):
        self._reset(self.x, self.lo, self.hi)
        self.fq(self.x, self.lo, self.hi).backward(self.g)

    def cfq_ops(self):
        self._reset(self.x, self.lo, self.hi)
        torch.ops.cfq.fake_quant_with_min_max_vars(self.x, self.lo, self.hi).backward(self.g)

    def fixed(self):
        self._reset(self.x)
        torch.fake_quantize_per_tensor_affine(self.x, SCALE, ZERO_POINT, QMIN, QMAX).backward(self.g)

    def learnable(self):
        self._reset(self.x, self.scale, self.zp)
        if self.learnable_casts:
            torch._fake_quantize_learnable_per_tensor_affine(
                self.x.float(), self.scale, self.zp, QMIN, QMAX, 1.0).to(self.dtype).backward(self.g)
        else:
            torch._fake_quantize_learnable_per_tensor_affine(
                self.x, self.scale, self.zp, QMIN, QMAX, 1.0).backward(self.g)

    def floor(self):
        self._reset(self.x)
        (self.x * 1.0).backward(self.g)


def saved_bytes_per_element(n=1 << 16):
    """{name: bytes kept for backward per input element}."""
    import cfq.torch as cfqt
    _, x = make_data(n)
    x = torch.from_numpy(x).requires_grad_()
    lo, hi = torch.tensor(MIN_, requires_grad=True), torch.tensor(MAX_, requires_grad=True)
    w = x.reshape(-1, 64)
    clo = torch.full((64,), MIN_, requires_grad=True)
    chi = torch.full((64,), MAX_, requires_grad=True)
    scale, zp = torch.tensor([SCALE], requires_grad=True), torch.tensor([float(ZERO_POINT)], requires_grad=True)
    x16 = x.detach().to(torch.bfloat16).requires_grad_()
    calls = {
        "cfq.torch vars (learned min/max)": lambda: cfqt.fake_quant_with_min_max_vars(x, lo, hi),
        "cfq.torch vars (learned min/max), bfloat16": lambda: cfqt.fake_quant_with_min_max_vars(x16, lo, hi),
        "cfq.torch args": lambda: cfqt.fake_quant_with_min_max_args(x, MIN_, MAX_),
        "cfq.torch vars, torch.ops.cfq (compile's path)": lambda: torch.ops.cfq.fake_quant_with_min_max_vars(
            x, lo, hi),
        "cfq.torch per-channel [n/64, 64]": lambda: cfqt.fake_quant_with_min_max_vars_per_channel(w, clo, chi),
        "torch.fake_quantize_per_tensor_affine": lambda: torch.fake_quantize_per_tensor_affine(
            x, SCALE, ZERO_POINT, QMIN, QMAX),
        "torch._fake_quantize_learnable_per_tensor_affine": lambda: (
            torch._fake_quantize_learnable_per_tensor_affine(x, scale, zp, QMIN, QMAX, 1.0)),
        "TF's FakeQuantWithMinMaxVarsGradient (keeps the input)": None,
    }
    out = {}
    for name, call in calls.items():
        if call is None:
            out[name] = 4.0
            continue
        sizes = []

        def pack(t):
            sizes.append(t.numel() * t.element_size())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            call()
        out[name] = sum(sizes) / n
    return out


def _dtypes(names):
    """The torch dtypes of the rows, with a note on how bfloat16 reaches cfq."""
    import cfq.torch as cfqt
    dtypes = [getattr(torch, name) for name in names]
    notes = []
    if torch.bfloat16 in dtypes:
        notes.append("bfloat16 to cfq as ml_dtypes arrays" if cfqt._numpy_bfloat16() is not None
                     else "bfloat16: ml_dtypes not importable, cfq.torch's float32 fallback")
    casts = [str(d).replace("torch.", "") for d in dtypes if _learnable_casts(d)]
    if casts:
        notes.append(f"* learnable on {', '.join(casts)}: torch's CPU backward has none, so x.float() in,"
                     " the result cast back, casts timed")
    return dtypes, notes


def _table(sizes, reps, threads, section, dtypes=None):
    dtypes, notes = _dtypes(dtypes or ["float32"])
    torch.set_num_threads(threads)
    print(f"\n{section}. PyTorch forward+backward, torch.set_num_threads({threads}):"
          " cfq.torch (learned min/max) against torch's fixed and learnable fake quant, each on the"
          " row's dtype")
    for note in notes:
        print("    " + note)
    print(f"{'n':>6} {'dtype':>9} {'cfq us':>10} {'fixed us':>10} {'fixed/cfq':>10} {'learnable us':>13}"
          f" {'learn/cfq':>10}")
    rows = []
    for n in sizes:
        for dtype in dtypes:
            c = _Case(n, dtype)
            t = interleaved_medians([c.cfq, c.fixed, c.learnable], reps_for(n, reps), SAMPLE_S)
            name = str(dtype).replace("torch.", "")
            rows.append((n, name, *t))
            star = "*" if c.learnable_casts else " "
            print(f"{fmt_size(n):>6} {name:>9} {t[0] * 1e6:>10.1f} {t[1] * 1e6:>10.1f} {t[1] / t[0]:>10.2f}"
                  f" {t[2] * 1e6:>12.1f}{star} {t[2] / t[0]:>10.2f}", flush=True)
            del c
    return rows


def run(sizes, reps, section=8, dtypes=("float32", "float16", "bfloat16")):
    """Print the PyTorch section for the given sizes (those up to 16M) and
    dtypes."""
    if torch is None:
        print(f"\n{section}. PyTorch: torch is not importable here: section skipped")
        return None
    import cfq.torch  # noqa: F401  (registers the ops)
    sizes = [n for n in sizes if n <= MAX_SIZE] or [1 << 10]
    default_threads = torch.get_num_threads()
    print(f"\n{section}. PyTorch {torch.__version__}: data as above, min/max = {MIN_}, {MAX_}"
          f" (scale {SCALE:.6g}, zero point {ZERO_POINT}); default threads: {default_threads}")
    results = {"threads=1": _table(sizes, reps, 1, f"{section}a", dtypes)}
    if default_threads != 1:
        results[f"threads={default_threads}"] = _table(sizes, reps, default_threads, f"{section}b", dtypes)
    torch.set_num_threads(1)
    c = _Case(1 << 10)
    t = interleaved_medians([c.cfq, c.floor, c.cfq_ops], max(reps, 15), SAMPLE_S)
    print(f"\n{section}c. at 1K, one thread: cfq.torch {t[0] * 1e6:.1f} us, (x * 1.0).backward(g) {t[1] * 1e6:.1f} us"
          f" (the autograd floor): ratio {t[0] / t[1]:.2f}; through torch.ops.cfq (the dispatcher,"
          f" as torch.compile calls it) {t[2] * 1e6:.1f} us")
    results["floor_1k"] = t
    torch.set_num_threads(default_threads)
    print(f"\n{section}d. bytes kept for backward per element (n = 64K)")
    saved = saved_bytes_per_element()
    for name, b in saved.items():
        print(f"  {name:<56} {b:6.3f}")
    results["saved"] = saved
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1K,4K,16K,64K,256K,1M,4M,16M")
    ap.add_argument("--reps", type=int, default=11)
    ap.add_argument("--dtypes", default="float32,float16,bfloat16")
    args = ap.parse_args(argv)
    run([parse_size(s) for s in args.sizes.split(",")], args.reps, dtypes=args.dtypes.split(","))


if __name__ == "__main__":
    main()
