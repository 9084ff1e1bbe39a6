"""scripts/bench_compare.py: two checkouts timed in separate, alternating processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts_mod import REPO, load_script

bench = load_script("bench_compare")


def test_a_folder_without_calcimg_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"expected a calcimg checkout holding src/calcimg"):
        bench.check_tree(tmp_path)


def test_a_timing_process_runs_the_given_tree() -> None:
    """The worker runs this checkout's map and detector on a small RG1 and returns its
    median time; a worker that failed (an API it calls gone) would stop the script."""
    pytest.importorskip("pydicom.data", reason="pydicom-data holds the benchmark film")
    seconds = bench.run_tree(bench.check_tree(REPO), "RG1_UNCR.dcm", 300, 1)
    assert 0.0 < seconds < 60.0


def test_the_summary_pairs_old_with_new() -> None:
    text = bench.summary([1.0, 1.2, 0.9], [0.9, 1.3, 0.8])
    assert "old median 1.000 s (min 0.900)" in text
    assert "new median 0.900 s (min 0.800)" in text
    assert "paired old - new: median +100 ms, range -100 to +100 ms over 3 pairs" in text
