"""scripts/vendor_variants.py: re-processed copies of a truth folder (tone curve, edge
enhancement, dose) keep their truth and change the pixels as each kind says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from calcimg.imageops import robust_sigma
from scripts_mod import REPO, load_script, sample_folder

FILMS = ("synth_0008", "synth_0016")  # MONOCHROME2 and MONOCHROME1, both uncompressed


def _truth_folder(tmp_path: Path) -> Path:
    return sample_folder(tmp_path / "src", FILMS)


def _run(src: Path, dst: Path, kind: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    cmd = [sys.executable, str(REPO / "scripts" / "vendor_variants.py"), str(src), str(dst)]
    return subprocess.run(
        [*cmd, "--kind", kind], capture_output=True, text=True, env=env, timeout=300, check=False
    )


def _attenuation(path: Path) -> tuple[np.ndarray, float]:
    """Pixels with higher = more attenuation, and the largest stored value."""
    ds = pydicom.dcmread(path)
    vmax = float(2 ** int(ds.BitsStored) - 1)
    a = ds.pixel_array.astype(np.float64)
    return (vmax - a if ds.PhotometricInterpretation == "MONOCHROME1" else a), vmax


@pytest.mark.parametrize("kind", ["gamma", "unsharp", "noise"])
def test_each_kind_changes_the_pixels_as_documented_and_keeps_the_truth(
    tmp_path: Path, kind: str
) -> None:
    vv = load_script("vendor_variants")
    src = _truth_folder(tmp_path)
    dst = tmp_path / kind
    proc = _run(src, dst, kind)
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = json.loads((dst / "variants.json").read_text())
    assert log["kind"] == kind and set(log["films"]) == {n + ".dcm" for n in FILMS}
    for name in FILMS:
        for suffix in vv.TRUTH_SUFFIXES:
            assert (dst / (name + suffix)).read_bytes() == (src / (name + suffix)).read_bytes()
        before = pydicom.dcmread(src / (name + ".dcm"))
        after = pydicom.dcmread(dst / (name + ".dcm"))
        assert after.PhotometricInterpretation == before.PhotometricInterpretation
        assert after.BitsStored == before.BitsStored
        a, vmax = _attenuation(src / (name + ".dcm"))
        b, _ = _attenuation(dst / (name + ".dcm"))
        assert b.shape == a.shape and b.min() >= 0 and b.max() <= vmax
        if kind == "gamma":
            # (v / vmax) ** 0.6 >= v / vmax: every pixel as or more attenuating
            assert (b >= a - 1).all() and b.mean() > a.mean() + 0.02 * vmax
        elif kind == "unsharp":
            # edges sharpened (more high-pass energy), the mean level kept
            assert vv.pixel_noise(b, vmax) > 1.3 * vv.pixel_noise(a, vmax)
            assert abs(b.mean() - a.mean()) < 0.01 * vmax
        else:
            # added: zero-mean noise whose spread is the film's own pixel noise
            d = (b - a)[(a > 0.1 * vmax) & (a < 0.9 * vmax)]
            spread = robust_sigma(d, max_samples=None)
            assert spread == pytest.approx(vv.pixel_noise(a, vmax), rel=0.05)
            assert abs(float(d.mean())) < 0.05 * spread


def test_mixed_is_reproducible_from_its_seed(tmp_path: Path) -> None:
    src = _truth_folder(tmp_path)
    for out in ("one", "two"):
        assert _run(src, tmp_path / out, "mixed").returncode == 0
    one = json.loads((tmp_path / "one" / "variants.json").read_text())
    assert one == json.loads((tmp_path / "two" / "variants.json").read_text())
    for name in FILMS:
        f = name + ".dcm"
        assert (tmp_path / "one" / f).read_bytes() == (tmp_path / "two" / f).read_bytes()


def test_a_folder_without_films_is_a_clear_error(tmp_path: Path) -> None:
    proc = _run(tmp_path, tmp_path / "out", "gamma")
    assert proc.returncode != 0
    assert str(tmp_path) in proc.stderr and "no .dcm files" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_strong_always_enhances_edges_within_its_documented_range(tmp_path: Path) -> None:
    vv = load_script("vendor_variants")
    draws = [vv.settings("strong", f"film_{i}", 0)[0] for i in range(200)]
    assert all(0.5 <= s["unsharp"] <= 2.0 and 1.0 <= s["unsharp_mm"] <= 4.0 for s in draws)
    # tone curve and noise each on about half the films, within the mixed kind's ranges
    assert 60 < sum("gamma" in s for s in draws) < 140
    assert 60 < sum("noise" in s for s in draws) < 140
    assert all(0.6 <= s.get("gamma", 1.0) <= 1.4 and 0 <= s.get("noise", 0) <= 1 for s in draws)
    src = _truth_folder(tmp_path)
    assert _run(src, tmp_path / "strong", "strong").returncode == 0
    for name in FILMS:
        a, vmax = _attenuation(src / (name + ".dcm"))
        b, _ = _attenuation(tmp_path / "strong" / (name + ".dcm"))
        assert vv.pixel_noise(b, vmax) > 1.2 * vv.pixel_noise(a, vmax)
