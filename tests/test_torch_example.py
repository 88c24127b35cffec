"""examples/qat_digits_torch.py runs and reaches its accuracies (skipped
without torch or scikit-learn)."""
import os
import re
import subprocess
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "qat_digits_torch.py")


@pytest.mark.skipif(not os.path.exists(EXAMPLE), reason="examples/ not in this tree")
def test_qat_digits_example():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
    r = subprocess.run([sys.executable, EXAMPLE], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    acc = {m.group(1): float(m.group(2)) for m in re.finditer(r"(\S+) test accuracy: ([0-9.]+)", r.stdout)}
    assert set(acc) == {"float", "8-bit", "4-bit"}, r.stdout
    assert acc["float"] >= 0.95
    assert acc["8-bit"] >= 0.90
    assert acc["4-bit"] >= 0.85
    assert "identical eval outputs: True" in r.stdout
