"""scripts/train_describe.py: an image and its vendor copies are one group in the
cross-validation, and the header names each seed once."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calcimg.config import load_config
from scripts_mod import load_script, sample_folder


def test_copies_of_an_image_share_its_seed_as_their_group(tmp_path: Path) -> None:
    td = load_script("train_describe")
    # a copy of the same films in a second folder stands for their vendor copies
    a = sample_folder(tmp_path / "a", ("synth_0004", "synth_0008"))
    b = sample_folder(tmp_path / "b", ("synth_0004",))
    x, y, groups, seeds = td.collect([a, b], load_config().describe)
    assert seeds == [4, 4, 8]
    assert set(groups.tolist()) == {4, 8}
    # every row of seed 4 (both folders) is one group; rows per image are the same
    n4 = int((groups == 4).sum())
    assert n4 == 2 * int((groups == 8).sum())  # synth_0004 and synth_0008 hold 2 lesions each
    assert len(x) == len(y) == len(groups)
    text = td.section_text(
        load_config().describe, np.zeros((5, x.shape[1])), [a, b], seeds, 0.3, len(y), ["none"]
    )
    assert "(seeds 4, 8, 3 images," in text


def test_seed_ranges_joins_consecutive_seeds() -> None:
    td = load_script("train_describe")
    assert td.seed_ranges([1000, 1001, 1002, 5000]) == "1000-1002, 5000"
