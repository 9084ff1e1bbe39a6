"""Surround descriptors: their layout, their symmetry, and what they tell apart."""

from __future__ import annotations

import numpy as np

from calcimg.surround import SURROUND_FEATURES, Surround

N = 200  # a 100 mm film at 0.5 mm
SP = 0.5


def _disc(cy: float, cx: float, r_mm: float) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:N, 0:N]
    inside = np.hypot(yy + 0.5 - cy, xx + 0.5 - cx) * SP <= r_mm
    return np.nonzero(inside)


def _film() -> tuple[np.ndarray, np.ndarray]:
    """Soft tissue (0.3) with a bone (0.6) filling the film's left 40 mm, a 2 mm deposit
    (0.5) centred on the film's centre, and a gentle texture."""
    rng = np.random.default_rng(5)
    film = np.full((N, N), 0.3, np.float32) + rng.normal(0, 0.005, (N, N)).astype(np.float32)
    bone = np.zeros((N, N), bool)
    bone[:, :80] = True
    film[bone] = 0.6
    ys, xs = _disc(N / 2, N / 2, 2.0)
    film[ys, xs] = 0.5
    return film, bone


def test_descriptors_are_named_and_finite() -> None:
    film, bone = _film()
    ys, xs = _disc(N / 2, N / 2, 2.0)
    d = Surround(film, bone, SP, 0.3).at((N / 2, N / 2), ys, xs)
    assert d.shape == (len(SURROUND_FEATURES),)
    assert len(set(SURROUND_FEATURES)) == len(SURROUND_FEATURES)
    assert np.isfinite(d).all()
    named = dict(zip(SURROUND_FEATURES, d, strict=True))
    # the deposit stands 0.2 (two thirds of the 0.3 unit) above the tissue around it
    assert abs(named["inside_step"] - 0.2 / 0.3) < 0.1
    assert named["around_bone"] == 0.0  # the bone's edge is 18 mm away


def test_descriptors_do_not_change_when_the_film_is_turned_or_mirrored() -> None:
    film, bone = _film()
    ys, xs = _disc(N / 2, N / 2, 2.0)
    ref = Surround(film, bone, SP, 0.3).at((N / 2, N / 2), ys, xs)
    for k in (1, 2, 3):
        f, b = np.rot90(film, k).copy(), np.rot90(bone, k).copy()
        yk, xk = np.nonzero(np.rot90(np.isin(np.arange(N * N), ys * N + xs).reshape(N, N), k))
        got = Surround(f, b, SP, 0.3).at((N / 2, N / 2), yk, xk)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    got = Surround(film[:, ::-1].copy(), bone[:, ::-1].copy(), SP, 0.3).at(
        (N / 2, N / 2), ys, N - 1 - xs
    )
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_a_bone_edge_goes_on_beyond_the_candidate_and_a_deposit_does_not() -> None:
    """The commonest false finding is a piece of a bone's margin the map missed: its
    surroundings have one long edge (coherent, steep beyond the candidate); a deposit's
    are flat."""
    film, bone = _film()
    unit = 0.3
    s = Surround(film, np.zeros_like(bone), SP, unit)  # the map missed the bone
    named = lambda d: dict(zip(SURROUND_FEATURES, d, strict=True))  # noqa: E731
    ys, xs = _disc(N / 2, N / 2, 2.0)
    deposit = named(s.at((N / 2, N / 2), ys, xs))
    # a 3 x 6 mm piece of the edge, as the detector would cut it out of the margin
    ey, ex = np.mgrid[94:106, 77:83]
    edge = named(s.at((100, 80), ey.ravel(), ex.ravel()))
    assert edge["beyond_grad"] > 2 * deposit["beyond_grad"]
    assert edge["beyond_spread"] > 0.5 > deposit["beyond_spread"]  # bone one side, tissue other
    assert edge["coherence_3_0_4"] > 0.9 > 0.5 > deposit["coherence_3_0_4"]


def test_many_candidates_at_once_are_each_what_one_alone_gives() -> None:
    """The batch stacks the patches as one image's channels (in chunks of at most 128):
    no candidate may read another's patch, and the chunks' seams must not show."""
    film, bone = _film()
    rng = np.random.default_rng(7)
    centres, pixels = [], []
    for _ in range(130):  # two chunks
        cy, cx = rng.uniform(-4, N + 4, 2)  # some patches reach over the film's edge
        ys, xs = _disc(cy, cx, rng.uniform(0.5, 4.0))
        centres.append((float(cy), float(cx)))
        pixels.append((ys, xs))
    s = Surround(film, bone, SP, 0.3)
    many = s.many(centres, pixels)
    assert many.shape == (130, len(SURROUND_FEATURES))
    alone = np.array([s.at(c, ys, xs) for c, (ys, xs) in zip(centres, pixels, strict=True)])
    np.testing.assert_allclose(many, alone, rtol=1e-12, atol=1e-12)
    assert s.many([], []).shape == (0, len(SURROUND_FEATURES))
