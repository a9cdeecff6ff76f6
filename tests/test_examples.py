"""The examples run as a user runs them: as scripts, in a subprocess, from another directory."""
import os
import pathlib
import re
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def run_example(name, *args, cwd, timeout=300):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    r = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{name} exited {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


def test_graph_basics(tmp_path):
    out = run_example("graph_basics.py", cwd=tmp_path)
    assert "matches the closed form: True" in out
    assert re.search(r"^E = 495\.6088", out, re.M)
    assert "dE/dA = [[2.7183, 14.7781, 60.2566], [7.3891, 109.1963, 1210.2864]]" in out
    assert "dE/dB = [[17.4964, 116.5854, 826.9431]]" in out
    # debugprint shows the placeholders with their types, and the ops between them
    assert "A:float64[2, 3]" in out and "B:float64[1, 3]" in out
    assert re.search(r"= exp\b", out) and re.search(r"= sum\b", out)


def test_train_digits_learns(tmp_path):
    out = run_example("train_digits.py", "--epochs", "3", cwd=tmp_path)
    assert re.search(r"^digits: 1438 train, 359 test, 64 features, 10 classes$", out, re.M)
    losses = [float(v) for v in re.findall(r"^epoch +\d+ +loss ([0-9.]+)", out, re.M)]
    assert len(losses) == 3, out
    assert losses[0] < 2.3 and losses[-1] < losses[0], f"loss did not go down: {losses}"
    history = re.search(r"^loss history: (.*)$", out, re.M).group(1).split()
    assert [float(v) for v in history] == pytest.approx(losses, abs=1e-4)
    acc = float(re.search(r"^test accuracy: ([0-9.]+)$", out, re.M).group(1))
    assert acc > 0.85, out


def test_digits_data_is_the_bundled_set():
    import numpy as np
    with np.load(EXAMPLES / "data" / "digits.npz") as z:
        images, labels = z["images"], z["labels"]
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8
    assert labels.shape == (1797,) and np.issubdtype(labels.dtype, np.integer)
    assert images.max() == 16 and images.min() == 0
    assert np.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
