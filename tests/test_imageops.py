"""Shared image operations (calcimg.imageops)."""

from __future__ import annotations

import numpy as np
import pytest

from calcimg.imageops import percentiles


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16])
def test_percentiles_are_numpys_to_the_bit(dtype: type) -> None:
    """The detector's features read percentiles through this faster path: the values,
    dtype included, are numpy's own, at every size and with ties, so that no feature
    moves. A Python scalar percentile interpolates in the values' own dtype, as numpy's does;
    a numpy scalar in float64."""
    rng = np.random.default_rng(7)
    for k in range(3000):
        n = int(rng.integers(1, 400))
        v = rng.normal(size=n) * rng.uniform(0.01, 1000.0)
        if k % 3 == 0:
            v = np.round(v)  # ties
        if dtype is np.uint16:
            v = np.abs(v)
        v = v.astype(dtype)
        for q in ((10, 90), (20, 80), (90,), (0, 50, 100), 90, 10.0, 50, 0, 100, np.float64(90)):
            want = np.percentile(v, q)
            got = percentiles(v, q)
            assert np.asarray(got).dtype == np.asarray(want).dtype
            np.testing.assert_array_equal(got, want)
