"""Anatomy templates: bones, joints and limb outlines in millimetres.

Each template function takes a random generator (for joint gaps and small variations)
and returns a :class:`Template` in its own millimetre frame (row_mm, col_mm; rows grow
downwards). Sizes follow adult anatomy to within the patient-size scale applied later.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from calcimg.synth.geometry import Point, Prim, capsule, ellipse, polygon

__all__ = [
    "ANATOMIES",
    "HELD_OUT_ANATOMIES",
    "BoneSpec",
    "JointSpec",
    "Template",
    "build_template",
]


@dataclass(slots=True)
class BoneSpec:
    """One bone: union of ``prims`` minus ``minus``; a cortical shell of ``cortex_mm``
    around trabecular bone; ``cap_mm`` is half its depth (along the beam)."""

    name: str
    prims: list[Prim]
    cortex_mm: float = 1.5
    cap_mm: float = 30.0
    trab: float = 1.0
    minus: list[Prim] = field(default_factory=list)


@dataclass(slots=True)
class JointSpec:
    """A joint between two groups of bones; the radiolucent space is found between them
    within ``radius_mm`` of ``center``. ``gap_mm`` is its width."""

    name: str
    bones_a: tuple[str, ...]
    bones_b: tuple[str, ...]
    center: Point
    radius_mm: float
    gap_mm: float


@dataclass(slots=True)
class Template:
    anatomy: str
    body_part: str
    view: str
    fov_mm: tuple[float, float]
    soft: list[Prim]
    soft_cap_mm: float
    bones: list[BoneSpec]
    joints: list[JointSpec]
    axis_deg: float = 90.0
    """Limb axis direction in the template (90 = along rows), for vessel courses."""
    lucent: list[tuple[Prim, float]] = field(default_factory=list)
    """Air inside the body (lungs, bowel gas): primitive and its depth in mm."""
    fingertips: list[Point] = field(default_factory=list)
    phlebolith_zone: list[Prim] = field(default_factory=list)
    sesamoid_sites: list[tuple[Point, float]] = field(default_factory=list)
    """Where sesamoids / accessory ossicles sit: (centre, radius_mm)."""
    extensor_joints: tuple[str, ...] = ()
    """Joints where tumoral calcinosis masses sit (hip, shoulder, elbow)."""


def _mirror(p: Point, width: float) -> Point:
    return (p[0], width - p[1])


def _mirror_prim(pr: Prim, width: float) -> Prim:
    return Prim(
        pr.kind,
        _mirror(pr.p0, width),
        _mirror(pr.p1, width),
        pr.r0,
        pr.r1,
        -pr.angle_deg,
        tuple(_mirror(p, width) for p in pr.points),
        pr.cortex_mm,
    )


# ----------------------------------------------------------------------------- knee AP


def knee_ap(rng: np.random.Generator) -> Template:
    g = float(rng.uniform(3.5, 6.0))  # tibiofemoral joint space (DOMAIN: 2-6 mm)
    jr = 168.0
    femur = BoneSpec(
        "femur",
        [
            capsule((-20, 105), (95, 105), 14, 15, cortex_mm=5.0),
            polygon([(80, 91), (80, 119), (135, 142), (135, 68)], cortex_mm=1.5),
            ellipse((148, 81), 20, 23, cortex_mm=1.2),
            ellipse((148, 129), 20, 23, cortex_mm=1.2),
            ellipse((130, 105), 18, 38, cortex_mm=1.2),
        ],
        cortex_mm=1.3,
        cap_mm=38,
    )
    t0 = jr + g
    tibia = BoneSpec(
        "tibia",
        [
            ellipse((t0 + 9, 105), 9, 43, cortex_mm=1.0),
            polygon([(t0 + 6, 63), (t0 + 6, 147), (238, 123), (238, 87)], cortex_mm=1.2),
            polygon([(t0 + 2, 98), (t0 - 2.0, 102), (t0 - 1.5, 106), (t0 + 2, 110)], cortex_mm=0.8),
            capsule((232, 105), (300, 105), 15, 14, cortex_mm=5.0),
        ],
        cortex_mm=1.2,
        cap_mm=34,
    )
    fibula = BoneSpec(
        "fibula",
        [
            ellipse((t0 + 22, 152), 9, 9, cortex_mm=1.0),
            capsule((t0 + 25, 152), (300, 144), 6, 5, cortex_mm=2.0),
        ],
        cortex_mm=1.5,
        cap_mm=8,
    )
    patella = BoneSpec(
        "patella", [ellipse((138, 105), 24, 21, cortex_mm=1.5)], cortex_mm=1.5, cap_mm=11
    )
    soft = [
        capsule((-30, 105), (120, 105), 72, 60),
        capsule((120, 105), (185, 105), 60, 57),
        capsule((185, 107), (300, 107), 57, 47),
    ]
    return Template(
        "knee_ap",
        "KNEE",
        "AP",
        (270.0, 215.0),
        soft,
        62.0,
        [femur, tibia, fibula, patella],
        [JointSpec("knee", ("femur",), ("tibia",), (jr + g / 2, 105), 52, g)],
        sesamoid_sites=[((150, 140), 4.5)],
    )


# ------------------------------------------------------------------------ knee lateral


def knee_lat(rng: np.random.Generator) -> Template:
    g = float(rng.uniform(3.5, 6.0))
    jr = 180.0
    femur = BoneSpec(
        "femur",
        [
            capsule((-20, 122), (110, 116), 15, 16, cortex_mm=5.0),
            polygon([(90, 99), (90, 133), (135, 150), (135, 88)], cortex_mm=1.5),
            ellipse((150, 120), 30, 33, cortex_mm=1.2),
        ],
        cortex_mm=1.3,
        cap_mm=40,
    )
    t0 = jr + g
    tibia = BoneSpec(
        "tibia",
        [
            ellipse((t0 + 9, 117), 9, 40, -4, cortex_mm=1.0),
            ellipse((t0 + 27, 82), 12, 8, cortex_mm=1.2),
            polygon([(t0 + 6, 79), (t0 + 6, 156), (250, 132), (250, 100)], cortex_mm=1.2),
            capsule((244, 116), (300, 120), 16, 15, cortex_mm=5.0),
        ],
        cortex_mm=1.2,
        cap_mm=36,
    )
    fibula = BoneSpec(
        "fibula",
        [
            ellipse((t0 + 22, 150), 9, 8, cortex_mm=1.0),
            capsule((t0 + 25, 150), (300, 142), 6, 5, cortex_mm=2.0),
        ],
        cortex_mm=1.5,
        cap_mm=8,
    )
    patella = BoneSpec(
        "patella", [ellipse((142, 70), 25, 10, 12, cortex_mm=1.5)], cortex_mm=1.5, cap_mm=20
    )
    soft = [
        capsule((-30, 118), (140, 116), 72, 64),
        capsule((140, 116), (200, 120), 64, 60),
        capsule((200, 126), (300, 130), 60, 50),
    ]
    return Template(
        "knee_lat",
        "KNEE",
        "LATERAL",
        (270.0, 230.0),
        soft,
        60.0,
        [femur, tibia, fibula, patella],
        [
            JointSpec("knee", ("femur",), ("tibia",), (jr + g / 2, 117), 45, g),
            JointSpec("patellofemoral", ("femur",), ("patella",), (142, 84), 28, 3.0),
        ],
        sesamoid_sites=[((152, 160), 4.0)],
    )


# ------------------------------------------------------------------------- hand / wrist


def _ray(
    name: str,
    base: Point,
    angle_deg: float,
    lengths: Sequence[float],
    radii: Sequence[float],
    gaps: Sequence[float],
    joint_names: Sequence[str],
) -> tuple[list[BoneSpec], list[JointSpec], list[Point]]:
    """Bones laid end to end from ``base`` along ``angle_deg`` (0 = up the film)."""
    a = math.radians(angle_deg)
    dr, dc = -math.cos(a), math.sin(a)
    bones: list[BoneSpec] = []
    joints: list[JointSpec] = []
    pos = 0.0
    ends: list[Point] = []
    for i, (length, r) in enumerate(zip(lengths, radii, strict=True)):
        p0 = (base[0] + dr * pos, base[1] + dc * pos)
        p1 = (base[0] + dr * (pos + length), base[1] + dc * (pos + length))
        end_r = r * 1.15
        mid_a = (p0[0] + dr * end_r, p0[1] + dc * end_r)
        mid_b = (p1[0] - dr * end_r, p1[1] - dc * end_r)
        bname = f"{name}_{i}"
        bones.append(
            BoneSpec(
                bname,
                [
                    capsule(mid_a, mid_b, r * 0.8, r * 0.75, cortex_mm=max(0.8, r * 0.35)),
                    ellipse(
                        (p0[0] + dr * end_r, p0[1] + dc * end_r), end_r, end_r * 1.05, cortex_mm=0.7
                    ),
                    ellipse(
                        (p1[0] - dr * end_r * 0.9, p1[1] - dc * end_r * 0.9),
                        end_r * 0.9,
                        end_r,
                        cortex_mm=0.7,
                    ),
                ],
                cortex_mm=0.9,
                cap_mm=r * 1.2,
            )
        )
        if i > 0:
            jc = (p0[0] - dr * gaps[i - 1] / 2, p0[1] - dc * gaps[i - 1] / 2)
            joints.append(
                JointSpec(
                    joint_names[i - 1], (f"{name}_{i - 1}",), (bname,), jc, r * 2.2, gaps[i - 1]
                )
            )
        ends.append(p1)
        pos += length + (gaps[i] if i < len(gaps) else 0.0)
    return bones, joints, ends


def hand_pa(rng: np.random.Generator) -> Template:
    gw = float(rng.uniform(2.0, 3.0))  # radiocarpal joint space
    bones: list[BoneSpec] = [
        BoneSpec(
            "radius",
            [
                capsule((300, 116), (228, 118), 11, 12, cortex_mm=3.0),
                polygon([(238, 106), (238, 128), (214, 138), (212, 101)], cortex_mm=1.0),
            ],
            cortex_mm=1.0,
            cap_mm=12,
        ),
        BoneSpec(
            "ulna",
            [
                capsule((300, 80), (226, 82), 6.5, 7.5, cortex_mm=2.5),
                ellipse((222, 82), 8, 8.5, cortex_mm=0.8),
            ],
            cortex_mm=0.8,
            cap_mm=8,
        ),
    ]
    top = 212 - gw  # proximal carpal row's lower edge
    carpals = {
        "scaphoid": ellipse((top - 9, 127), 9.5, 7.5, 30),
        "lunate": ellipse((top - 8, 112), 8, 8),
        "triquetrum": ellipse((top - 11, 98), 7, 7),
        "pisiform": ellipse((top - 13, 92), 5, 5),
        "trapezium": ellipse((top - 26, 137), 8, 7.5),
        "trapezoid": ellipse((top - 29, 124), 7, 6),
        "capitate": ellipse((top - 27, 111), 11, 7.5),
        "hamate": ellipse((top - 26, 97), 10, 7.5),
    }
    for n, pr in carpals.items():
        bones.append(BoneSpec(n, [pr], cortex_mm=0.7, cap_mm=9))
    joints = [JointSpec("wrist", ("radius",), ("scaphoid", "lunate"), (212 - gw / 2, 118), 22, gw)]
    fingertips: list[Point] = []
    base_row = top - 41
    spec = [
        # name, base, angle, lengths (MC, P1, P2, P3), radii
        ("ray2", (base_row, 125.0), 4.0, [62, 40, 23, 17], [4.8, 4.5, 3.8, 3.2]),
        ("ray3", (base_row - 1, 110.0), -1.0, [60, 44, 27, 18], [5.0, 4.7, 4.0, 3.3]),
        ("ray4", (base_row + 1, 96.0), -6.0, [56, 41, 25, 18], [4.6, 4.3, 3.7, 3.1]),
        ("ray5", (base_row + 4, 84.0), -13.0, [50, 33, 19, 16], [4.3, 4.0, 3.4, 2.9]),
        ("ray1", (top - 35, 141.0), 30.0, [40, 29, 22], [5.2, 5.0, 4.2]),
    ]
    soft = [
        polygon(
            [
                (base_row + 2, 72),
                (base_row - 62, 76),
                (base_row - 66, 136),
                (base_row - 4, 148),
                (top + 10, 150),
                (top + 12, 74),
            ]
        ),
        capsule((top - 10, 112), (300, 106), 36, 32),
    ]
    sesamoids: list[tuple[Point, float]] = []
    for name, base, ang, lengths, radii in spec:
        ngap = len(lengths) - 1
        gaps = [float(rng.uniform(1.6, 2.6)) for _ in range(ngap)]
        jn = ["mcp", "pip", "dip"] if name != "ray1" else ["mcp", "ip"]
        b, j, ends = _ray(name, base, ang, lengths, radii, gaps, [f"{x}{name[-1]}" for x in jn])
        bones += b
        joints += j
        tip = ends[-1]
        a = math.radians(ang)
        start = ends[0]
        tip_ext = (tip[0] - math.cos(a) * 6, tip[1] + math.sin(a) * 6)
        soft.append(capsule(start, tip_ext, radii[0] * 2.1, radii[-1] * 2.3))
        # the finger pulp beyond the distal tuft: where calcinosis circumscripta sits
        pulp = (tip[0] - math.cos(a) * 3.5, tip[1] + math.sin(a) * 3.5)
        fingertips.append(pulp)
        if name == "ray1":
            soft.append(capsule(base, start, 11, radii[0] * 2.1))
        if name == "ray1":
            sesamoids.append(((ends[0][0] - 2, ends[0][1] + 4), 2.5))
    return Template(
        "hand_pa",
        "HAND",
        "PA",
        (255.0, 205.0),
        soft,
        24.0,
        bones,
        joints,
        fingertips=fingertips,
        sesamoid_sites=sesamoids,
    )


# ---------------------------------------------------------------------------- shoulder


def shoulder_ap(rng: np.random.Generator) -> Template:
    g = float(rng.uniform(3.0, 5.5))
    head_c = (100.0, 152.0)
    hr = 25.0
    glen_c = (102.0, head_c[1] - hr - g - 6.5)
    bones = [
        BoneSpec(
            "humerus",
            [
                ellipse(head_c, hr, hr - 1, cortex_mm=1.0),
                ellipse((92, 176), 15, 10, cortex_mm=1.0),
                capsule((118, 160), (270, 168), 16, 14, cortex_mm=4.5),
            ],
            cortex_mm=1.2,
            cap_mm=26,
        ),
        BoneSpec(
            "scapula",
            [
                polygon(
                    [
                        (72, glen_c[1] - 2),
                        (132, glen_c[1] - 2),
                        (185, 96),
                        (250, 60),
                        (255, 35),
                        (85, 40),
                    ],
                    cortex_mm=1.0,
                ),
                ellipse(glen_c, 23, 6.5, cortex_mm=1.5),
                capsule((52, 70), (58, 165), 8, 8, cortex_mm=1.5),
                capsule((82, 96), (88, 124), 6, 5, cortex_mm=1.2),
            ],
            cortex_mm=1.2,
            cap_mm=7,
            trab=1.4,
        ),
        BoneSpec(
            "clavicle",
            [capsule((62, -20), (44, 122), 9, 8, cortex_mm=2.5)],
            cortex_mm=2.0,
            cap_mm=9,
        ),
    ]
    for k in range(4):
        r0 = 60 + 45 * k
        pts = [(r0 + 25 * math.sin(t / 40), t) for t in range(-10, 130, 20)]
        prims = [capsule(pts[i], pts[i + 1], 5.5, 5.5, cortex_mm=1.5) for i in range(len(pts) - 1)]
        bones.append(BoneSpec(f"rib{k}", prims, cortex_mm=1.5, cap_mm=4))
    soft = [
        ellipse((160, 40), 170, 115),
        capsule((70, 150), (300, 170), 55, 45),
        ellipse((90, 130), 60, 70),
    ]
    lung = ellipse((175, 30), 120, 60)
    return Template(
        "shoulder_ap",
        "SHOULDER",
        "AP",
        (250.0, 250.0),
        soft,
        70.0,
        bones,
        [
            JointSpec(
                "shoulder", ("humerus",), ("scapula",), (head_c[0], head_c[1] - hr - g / 2), 40, g
            ),
        ],
        lucent=[(lung, 80.0)],
        extensor_joints=("shoulder",),
    )


# -------------------------------------------------------------------------- pelvis AP


def pelvis_ap(rng: np.random.Generator) -> Template:
    g = float(rng.uniform(3.0, 5.0))
    gs = float(rng.uniform(3.0, 5.5))  # symphysis
    width = 380.0
    hc = (170.0, 100.0)
    hr = 24.0
    left: list[BoneSpec] = [
        BoneSpec(
            "ilium",
            [
                polygon(
                    [(40, 160), (5, 60), (20, 25), (80, 30), (125, 70), (150, 135), (125, 165)],
                    cortex_mm=1.5,
                ),
                polygon([(125, 60), (130, 140), (hc[0] + 5, 140), (hc[0] + 5, 62)], cortex_mm=1.5),
                ellipse((250, 115), 26, 17, cortex_mm=1.5),
                capsule((200, 120), (232, 190 - gs / 2 - 5), 9, 10, cortex_mm=1.5),
                capsule((270, 128), (262, 190 - gs / 2 - 6), 7, 9, cortex_mm=1.5),
                ellipse((240, 190 - gs / 2 - 8), 20, 8, cortex_mm=1.5),
            ],
            cortex_mm=1.5,
            cap_mm=9,
            trab=0.9,
            minus=[ellipse((hc[0] - 8, hc[1]), hr + g - 2, hr + g), ellipse((236, 150), 19, 13)],
        ),
        BoneSpec(
            "femur",
            [
                # the neck runs from the head down and laterally to the trochanters
                ellipse(hc, hr, hr, cortex_mm=1.0),
                capsule((178, 94), (200, 74), 15, 16, cortex_mm=2.0),
                ellipse((196, 66), 19, 14, cortex_mm=1.0),
                ellipse((228, 88), 8, 6, cortex_mm=1.0),
                capsule((206, 74), (340, 86), 17, 15, cortex_mm=5.0),
            ],
            cortex_mm=1.2,
            cap_mm=24,
        ),
    ]
    bones = [
        BoneSpec(
            "sacrum",
            [polygon([(30, 158), (30, 222), (150, 196), (150, 184)])],
            cortex_mm=1.5,
            cap_mm=18,
            trab=0.8,
        ),
        BoneSpec("l5", [ellipse((5, 190), 20, 28)], cortex_mm=1.5, cap_mm=17),
    ]
    joints: list[JointSpec] = []
    for side in ("left", "right"):
        for b in left:
            prims = b.prims if side == "left" else [_mirror_prim(p, width) for p in b.prims]
            minus = b.minus if side == "left" else [_mirror_prim(p, width) for p in b.minus]
            bones.append(BoneSpec(f"{b.name}_{side}", prims, b.cortex_mm, b.cap_mm, b.trab, minus))
        c = (hc[0] - hr - g / 2 + 2, hc[1])
        c = c if side == "left" else _mirror(c, width)
        joints.append(JointSpec("hip", (f"femur_{side}",), (f"ilium_{side}",), c, 34, g))
    joints.append(
        JointSpec("symphysis_pubis", ("ilium_left",), ("ilium_right",), (240, 190), 22, gs)
    )
    soft = [ellipse((165, 190), 215, 182)]
    lucent: list[tuple[Prim, float]] = []
    for _ in range(int(rng.integers(6, 18))):
        c = (float(rng.uniform(10, 140)), float(rng.uniform(80, 300)))
        lucent.append(
            (
                ellipse(
                    c,
                    float(rng.uniform(4, 16)),
                    float(rng.uniform(5, 20)),
                    float(rng.uniform(0, 180)),
                ),
                float(rng.uniform(8, 30)),
            )
        )
    zone = [ellipse((235, 140), 30, 28), ellipse((235, 240), 30, 28)]
    return Template(
        "pelvis_ap",
        "PELVIS",
        "AP",
        (320.0, width),
        soft,
        105.0,
        bones,
        joints,
        lucent=lucent,
        phlebolith_zone=zone,
        extensor_joints=("hip",),
    )


# ------------------------------------------------------------------------------- elbow


def elbow_ap(rng: np.random.Generator) -> Template:
    g = float(rng.uniform(2.5, 4.5))
    jr = 150.0
    humerus = BoneSpec(
        "humerus",
        [
            capsule((-20, 92), (108, 94), 12, 13, cortex_mm=4.0),
            polygon(
                [(95, 80), (95, 108), (130, 128), (140, 122), (140, 62), (130, 56)], cortex_mm=1.2
            ),
            ellipse((jr - 13, 80), 13, 16, cortex_mm=1.0),
            ellipse((jr - 12, 113), 12, 12, cortex_mm=1.0),
            ellipse((127, 56), 8, 8, cortex_mm=1.0),
            ellipse((128, 127), 7, 6, cortex_mm=1.0),
        ],
        cortex_mm=1.2,
        cap_mm=24,
        minus=[ellipse((124, 92), 7, 6)],
    )
    t0 = jr + g
    radius = BoneSpec(
        "radius",
        [
            ellipse((t0 + 5, 114), 5, 11, cortex_mm=0.8),
            capsule((t0 + 8, 114), (t0 + 28, 112), 6, 6.5, cortex_mm=1.5),
            capsule((t0 + 28, 112), (270, 106), 6.5, 8, cortex_mm=2.5),
        ],
        cortex_mm=1.2,
        cap_mm=10,
    )
    ulna = BoneSpec(
        "ulna",
        [
            ellipse((t0 + 8, 84), 8, 15, cortex_mm=0.9),
            ellipse((jr - 10, 86), 13, 10, cortex_mm=0.9),
            capsule((t0 + 14, 84), (270, 90), 9, 7, cortex_mm=2.5),
        ],
        cortex_mm=1.2,
        cap_mm=11,
    )
    soft = [capsule((-30, 92), (135, 93), 44, 48), capsule((135, 93), (280, 99), 48, 38)]
    return Template(
        "elbow_ap",
        "ELBOW",
        "AP",
        (260.0, 190.0),
        soft,
        42.0,
        [humerus, radius, ulna],
        [JointSpec("elbow", ("humerus",), ("radius", "ulna"), (jr + g / 2, 98), 40, g)],
        extensor_joints=("elbow",),
    )


# ------------------------------------------------------------------------ ankle lateral


def ankle_lat(rng: np.random.Generator) -> Template:
    g = float(rng.uniform(2.5, 4.5))
    jr = 140.0
    t0 = jr + g
    bones = [
        BoneSpec(
            "tibia",
            [
                capsule((-20, 110), (110, 112), 14, 15, cortex_mm=4.0),
                polygon([(95, 96), (95, 128), (jr + 1, 136), (jr + 1, 90)], cortex_mm=1.0),
            ],
            cortex_mm=1.2,
            cap_mm=22,
        ),
        BoneSpec(
            "fibula",
            [
                capsule((-20, 126), (125, 120), 6, 6.5, cortex_mm=2.0),
                ellipse((138, 121), 14, 8, cortex_mm=1.0),
            ],
            cortex_mm=1.2,
            cap_mm=9,
        ),
        BoneSpec(
            "talus",
            [
                ellipse((t0 + 17, 112), 17, 23, cortex_mm=1.0),
                ellipse((t0 + 22, 137), 10, 12, cortex_mm=0.9),
            ],
            cortex_mm=0.9,
            cap_mm=20,
        ),
        BoneSpec(
            "calcaneus",
            [
                polygon(
                    [
                        (t0 + 36, 62),
                        (t0 + 32, 108),
                        (t0 + 44, 140),
                        (t0 + 62, 140),
                        (t0 + 74, 104),
                        (t0 + 70, 58),
                        (t0 + 56, 48),
                    ],
                    cortex_mm=1.0,
                )
            ],
            cortex_mm=1.0,
            cap_mm=20,
        ),
        BoneSpec("navicular", [ellipse((t0 + 24, 157), 10, 6.5)], cortex_mm=0.8, cap_mm=12),
        BoneSpec("cuneiform", [ellipse((t0 + 28, 173), 11, 8)], cortex_mm=0.8, cap_mm=14),
        BoneSpec("cuboid", [ellipse((t0 + 50, 160), 11, 10)], cortex_mm=0.8, cap_mm=12),
    ]
    for k in range(3):
        bones.append(
            BoneSpec(
                f"metatarsal{k}",
                [
                    capsule(
                        (t0 + 32 + 5 * k, 186 + 2 * k),
                        (t0 + 52 + 4 * k, 262),
                        5.5,
                        4.5,
                        cortex_mm=1.6,
                    )
                ],
                cortex_mm=1.2,
                cap_mm=6,
            )
        )
    soft = [
        capsule((-30, 112), (jr, 110), 40, 32),
        polygon(
            [
                (jr - 5, 78),
                (t0 + 30, 48),
                (t0 + 65, 42),
                (t0 + 82, 70),
                (t0 + 80, 200),
                (t0 + 72, 280),
                (t0 + 40, 280),
                (t0 + 16, 190),
                (jr - 5, 150),
            ]
        ),
    ]
    return Template(
        "ankle_lat",
        "ANKLE",
        "LATERAL",
        (250.0, 265.0),
        soft,
        34.0,
        bones,
        [
            JointSpec("ankle", ("tibia",), ("talus",), (jr + g / 2, 112), 30, g),
            JointSpec("subtalar", ("talus",), ("calcaneus",), (t0 + 34, 108), 22, 2.5),
        ],
        sesamoid_sites=[((t0 + 26, 86), 4.0)],
    )


# ------------------------------------------------------------------- leg (long bones)


def leg_ap(rng: np.random.Generator) -> Template:
    g = float(rng.uniform(2.5, 4.5))
    jr = 330.0
    t0 = jr + g
    bones = [
        BoneSpec(
            "tibia",
            [
                capsule((-20, 82), (300, 80), 15, 12, cortex_mm=5.5),
                polygon([(285, 68), (285, 93), (jr, 104), (jr, 56)], cortex_mm=1.0),
                ellipse((jr - 4, 58), 12, 6, cortex_mm=1.0),
            ],
            cortex_mm=1.2,
            cap_mm=20,
        ),
        BoneSpec(
            "fibula",
            [
                capsule((-20, 122), (320, 114), 7, 6, cortex_mm=2.5),
                ellipse((jr + 4, 115), 16, 8, cortex_mm=1.0),
            ],
            cortex_mm=1.5,
            cap_mm=8,
        ),
        BoneSpec(
            "talus", [ellipse((t0 + 16, 82), 16, 25, cortex_mm=1.0)], cortex_mm=1.0, cap_mm=22
        ),
    ]
    soft = [
        capsule((-30, 92), (200, 88), 58, 44),
        capsule((200, 88), (jr + 10, 86), 44, 34),
        ellipse((t0 + 20, 86), 30, 40),
    ]
    return Template(
        "leg_ap",
        "LEG",
        "AP",
        (370.0, 180.0),
        soft,
        45.0,
        bones,
        [JointSpec("ankle", ("tibia",), ("talus",), (jr + g / 2, 82), 26, g)],
    )


# ------------------------------------------------------------- held-out: foot DP


def _foot_ray(
    k: int,
    base: Point,
    mt_angle_deg: float,
    mt_length: float,
    mt_radius: float,
    toe_angle_deg: float,
    lengths: Sequence[float],
    radii: Sequence[float],
    rng: np.random.Generator,
) -> tuple[list[BoneSpec], list[JointSpec], Point, Point, Point]:
    """Metatarsal ``k`` and its toe; the toe may point in another direction than the
    metatarsal (the hallux turns laterally at the MTP joint). Returns the bones, the
    MTP and IP joints, the metatarsal head, the toe's distal end and its pulp."""
    mt, _, mt_ends = _ray(f"mt{k}", base, mt_angle_deg, [mt_length], [mt_radius], [], [])
    mt[0].name = f"metatarsal{k}"
    head = mt_ends[0]
    g_mtp = float(rng.uniform(1.5, 2.5))  # MTP joint space, as the fingers' MCP joints
    a = math.radians(toe_angle_deg)
    toe_base = (head[0] - math.cos(a) * g_mtp, head[1] + math.sin(a) * g_mtp)
    gaps = [float(rng.uniform(1.5, 2.3)) for _ in range(len(lengths) - 1)]
    names = ["ip"] if len(lengths) == 2 else ["pip", "dip"]
    toe, joints, ends = _ray(
        f"toe{k}", toe_base, toe_angle_deg, lengths, radii, gaps, [f"{n}{k}" for n in names]
    )
    mid = (head[0] - math.cos(a) * g_mtp / 2, head[1] + math.sin(a) * g_mtp / 2)
    mtp = JointSpec(f"mtp{k}", (f"metatarsal{k}",), (f"toe{k}_0",), mid, mt_radius * 2.4, g_mtp)
    tip = ends[-1]
    # the toe pulp beyond the distal tuft: where calcinosis circumscripta sits
    pulp = (tip[0] - math.cos(a) * 3.5, tip[1] + math.sin(a) * 3.5)
    return [*mt, *toe], [mtp, *joints], head, tip, pulp


def foot_dp(rng: np.random.Generator) -> Template:
    """Dorsoplantar foot, toes up the film, great toe at high columns: talar head,
    anterior calcaneus (the heel runs off the film), navicular, cuneiforms, cuboid, five
    metatarsals and the toes (hallux two phalanges, lesser toes three)."""
    g_tn = float(rng.uniform(1.8, 2.8))  # talonavicular joint space
    g_cc = float(rng.uniform(1.8, 2.8))  # calcaneocuboid joint space
    bones: list[BoneSpec] = [
        BoneSpec(
            "calcaneus",
            [
                polygon(
                    [
                        (305, 60),
                        (245, 55),
                        (214, 62),
                        (204 + g_cc, 68),
                        (204 + g_cc, 92),
                        (232, 101),
                        (305, 104),
                    ],
                    cortex_mm=1.0,
                )
            ],
            cortex_mm=1.0,
            cap_mm=20,
        ),
        BoneSpec(
            "talus",
            [
                ellipse((236, 109), 21, 16, -8, cortex_mm=1.0),
                capsule((222, 113), (204, 119), 11, 12, cortex_mm=1.0),
                ellipse((201, 121), 12, 14, cortex_mm=0.9),
            ],
            cortex_mm=0.9,
            cap_mm=18,
        ),
        BoneSpec(
            "navicular",
            [ellipse((189 - g_tn - 7, 124), 7.5, 17, -8, cortex_mm=0.8)],
            cortex_mm=0.8,
            cap_mm=12,
        ),
        BoneSpec(
            "cuboid",
            [
                polygon(
                    [
                        (160, 76),
                        (158, 92),
                        (164, 97),
                        (200, 95),
                        (204, 88),
                        (205, 70),
                        (199, 65),
                        (166, 69),
                    ],
                    cortex_mm=0.8,
                )
            ],
            cortex_mm=0.8,
            cap_mm=12,
        ),
    ]
    nav_top = 189 - g_tn - 14.5
    cun = {
        "medial_cuneiform": ellipse((nav_top - 13, 135), 13, 9),
        "intermediate_cuneiform": ellipse((nav_top - 10, 120), 9.5, 6.5),
        "lateral_cuneiform": ellipse((nav_top - 12, 106), 11, 7),
    }
    for n, pr in cun.items():
        bones.append(BoneSpec(n, [pr], cortex_mm=0.8, cap_mm=12))
    joints: list[JointSpec] = [
        JointSpec("talonavicular", ("talus",), ("navicular",), (189 - g_tn / 2, 121), 16, g_tn),
        JointSpec("calcaneocuboid", ("calcaneus",), ("cuboid",), (203 + g_cc / 2, 80), 16, g_cc),
    ]
    soft = [
        polygon(
            [
                (305, 58),
                (240, 50),
                (180, 53),
                (120, 54),
                (92, 55),
                (80, 64),
                (70, 100),
                (68, 128),
                (76, 158),
                (100, 160),
                (150, 151),
                (190, 150),
                (240, 132),
                (305, 124),
            ]
        )
    ]
    mt_base_row = nav_top - 27.5  # distal edge of the medial cuneiform and a TMT gap
    spec: list[tuple[int, Point, float, float, float, float, list[float], list[float]]] = [
        # k, base, MT angle, MT length, MT radius, toe angle, phalanx lengths, radii
        (1, (mt_base_row, 134.0), 7.0, 63, 6.5, -5.0, [31, 24], [6.0, 5.4]),
        (2, (mt_base_row + 6, 119.0), 1.5, 76, 4.5, 1.0, [27, 11, 9], [3.8, 3.3, 3.0]),
        (3, (mt_base_row + 3, 105.0), -1.0, 71, 4.3, -3.0, [24, 10, 8], [3.6, 3.2, 2.9]),
        (4, (mt_base_row + 12, 91.0), -4.0, 72, 4.2, -7.0, [22, 9, 8], [3.5, 3.1, 2.8]),
        (5, (mt_base_row + 14, 78.0), -7.5, 68, 4.4, -12.0, [18, 7, 7], [3.3, 2.9, 2.7]),
    ]
    fingertips: list[Point] = []
    sesamoids: list[tuple[Point, float]] = []
    for k, base, mt_ang, mt_len, mt_r, toe_ang, lengths, radii in spec:
        b, j, head, tip, pulp = _foot_ray(
            k, base, mt_ang, mt_len, mt_r, toe_ang, lengths, radii, rng
        )
        bones += b
        joints += j
        fingertips.append(pulp)
        a = math.radians(toe_ang)
        tip_ext = (tip[0] - math.cos(a) * 6, tip[1] + math.sin(a) * 6)
        soft.append(capsule(head, tip_ext, radii[0] * 2.1, radii[-1] * 2.4))
        if k == 1:
            # the hallux sesamoids, plantar to the first metatarsal head, project over it
            sesamoids += [((head[0] + 8, head[1] - 5), 3.5), ((head[0] + 8, head[1] + 5), 4.5)]
    # the fifth metatarsal's tuberosity (styloid) juts laterally from its base
    mt5 = next(b for b in bones if b.name == "metatarsal5")
    mt5.prims.append(ellipse((mt_base_row + 16, 71), 8, 6, 20, cortex_mm=0.8))
    # accessory navicular (os tibiale externum) and os peroneum
    sesamoids += [((180, 146), 4.0), ((192, 63), 3.5)]
    return Template(
        "foot_dp",
        "FOOT",
        "AP",  # dorsoplantar: the foot's AP projection, (0018,5101) View Position AP
        (290.0, 205.0),
        soft,
        30.0,
        bones,
        joints,
        fingertips=fingertips,
        sesamoid_sites=sesamoids,
    )


# ---------------------------------------------------------- held-out: forearm AP


def forearm_ap(rng: np.random.Generator) -> Template:
    """Forearm AP, elbow at the top, wrist at the bottom: radius (lateral, high columns)
    and ulna shafts with the distal humerus and the proximal carpal row partly in field."""
    ge = float(rng.uniform(2.5, 4.5))  # elbow joint space (as elbow_ap)
    gw = float(rng.uniform(2.0, 3.0))  # radiocarpal joint space (as hand_pa)
    je = 36.0  # humeral side of the elbow joint
    jw = 284.0  # distal radial articular surface
    dc = -17.0  # elbow_ap's columns moved onto this film's midline
    t0 = je + ge
    humerus = BoneSpec(
        "humerus",
        [
            capsule((-140, 92 + dc), (je - 42, 94 + dc), 12, 13, cortex_mm=4.0),
            polygon(
                [
                    (je - 55, 80 + dc),
                    (je - 55, 108 + dc),
                    (je - 20, 128 + dc),
                    (je - 10, 122 + dc),
                    (je - 10, 62 + dc),
                    (je - 20, 56 + dc),
                ],
                cortex_mm=1.2,
            ),
            ellipse((je - 13, 80 + dc), 13, 16, cortex_mm=1.0),
            ellipse((je - 12, 113 + dc), 12, 12, cortex_mm=1.0),
            ellipse((je - 23, 56 + dc), 8, 8, cortex_mm=1.0),
            ellipse((je - 22, 127 + dc), 7, 6, cortex_mm=1.0),
        ],
        cortex_mm=1.2,
        cap_mm=24,
        minus=[ellipse((je - 26, 92 + dc), 7, 6)],
    )
    radius = BoneSpec(
        "radius",
        [
            ellipse((t0 + 5, 114 + dc), 5, 11, cortex_mm=0.8),
            capsule((t0 + 8, 114 + dc), (t0 + 28, 112 + dc), 6, 6.5, cortex_mm=1.5),
            # the radial shaft bows laterally and widens distally
            capsule((t0 + 28, 112 + dc), (t0 + 85, 102), 6.5, 7.0, cortex_mm=2.5),
            capsule((t0 + 85, 102), (t0 + 165, 103.5), 7.0, 8.0, cortex_mm=2.5),
            capsule((t0 + 165, 103.5), (jw - 22, 100), 8.0, 9.5, cortex_mm=2.5),
            polygon([(jw - 28, 90), (jw - 28, 110), (jw - 4, 118), (jw + 1, 117), (jw, 86)]),
        ],
        cortex_mm=1.2,
        cap_mm=11,
    )
    ulna = BoneSpec(
        "ulna",
        [
            ellipse((t0 + 8, 84 + dc), 8, 15, cortex_mm=0.9),
            ellipse((je - 10, 86 + dc), 13, 10, cortex_mm=0.9),
            capsule((t0 + 14, 84 + dc), (t0 + 110, 72), 9, 7, cortex_mm=2.5),
            capsule((t0 + 110, 72), (jw - 16, 74), 7, 5.5, cortex_mm=2.0),
            ellipse((jw - 10, 74), 8, 8.5, cortex_mm=0.8),
            capsule((jw - 9, 67), (jw - 2, 66), 2.8, 2.2, cortex_mm=0.8),  # ulnar styloid
        ],
        cortex_mm=1.0,
        cap_mm=10,
    )
    bones = [humerus, radius, ulna]
    top = jw + gw  # proximal edge of the proximal carpal row
    carpals = {
        "scaphoid": ellipse((top + 9.5, 109), 9.5, 7.5, -30),
        "lunate": ellipse((top + 8, 95), 8, 8),
        "triquetrum": ellipse((top + 11, 81), 7, 7),
        "pisiform": ellipse((top + 13, 75), 5, 5),
        "trapezium": ellipse((top + 26, 120), 8, 7.5),
        "trapezoid": ellipse((top + 29, 107), 7, 6),
        "capitate": ellipse((top + 27, 94), 11, 7.5),
        "hamate": ellipse((top + 26, 80), 10, 7.5),
    }
    for n, pr in carpals.items():
        bones.append(BoneSpec(n, [pr], cortex_mm=0.7, cap_mm=9))
    soft = [
        capsule((-40, 75), (je - 10, 76), 44, 48),
        capsule((je - 10, 76), (je + 80, 80), 48, 43),
        capsule((je + 80, 80), (jw - 5, 92), 43, 33),
        capsule((jw - 5, 92), (345, 96), 33, 36),
    ]
    return Template(
        "forearm_ap",
        "FOREARM",
        "AP",
        (310.0, 150.0),
        soft,
        32.0,
        bones,
        [
            JointSpec("elbow", ("humerus",), ("radius", "ulna"), (je + ge / 2, 98 + dc), 40, ge),
            JointSpec("wrist", ("radius",), ("scaphoid", "lunate"), (jw + gw / 2, 101), 22, gw),
        ],
        extensor_joints=("elbow",),
    )


# ------------------------------------------------------------- held-out: chest PA


def chest_pa(rng: np.random.Generator) -> Template:
    """PA chest: thorax with two lungs (air), thoracic spine behind the mediastinum,
    ribs (posterior arcs and anterior arcs), clavicles, manubrium, scapulae and the
    humeral heads at the top corners. Image left is the patient's right."""
    g = float(rng.uniform(3.0, 5.5))  # glenohumeral joint space (as shoulder_ap)
    width = 420.0
    mid = width / 2
    bones: list[BoneSpec] = []
    # T1-T12: bodies widen and deepen downwards; discs 4-6 mm
    row = 34.0
    centres: list[float] = []
    widths: list[float] = []
    for k in range(12):
        h = 17.0 + 8.0 * k / 11
        w = 30.0 + 16.0 * k / 11
        bones.append(
            BoneSpec(
                f"t{k + 1}",
                [
                    polygon(
                        [
                            (row, mid - w / 2),
                            (row, mid + w / 2),
                            (row + h, mid + w / 2 + 1),
                            (row + h, mid - w / 2 - 1),
                        ]
                    )
                ],
                cortex_mm=1.0,
                cap_mm=15,
                trab=0.9,
            )
        )
        centres.append(row + h / 2)
        widths.append(w)
        row += h + float(rng.uniform(4.0, 6.0))
    bones.append(
        BoneSpec(
            "manubrium",
            [
                polygon(
                    [
                        (64, mid - 20),
                        (64, mid + 20),
                        (72, mid + 25),
                        (112, mid + 16),
                        (112, mid - 16),
                        (72, mid - 25),
                    ]
                )
            ],
            cortex_mm=1.0,
            cap_mm=6,
            trab=0.9,
        )
    )
    # half-width of the rib cage (mm from the midline) at each rib's lateral bend
    half = [66.0, 100.0, 121.0, 133.0, 141.0, 146.0, 149.0, 150.0, 149.0, 146.0]
    left: list[BoneSpec] = []
    for k, hw in enumerate(half):
        y0 = centres[k]
        w0 = widths[k] / 2 + 3.0
        # posterior arc: from the costovertebral joint laterally, rising a little, then
        # bending down where the rib turns forward at the lateral chest wall
        post = []
        for t in np.linspace(0.0, 1.0, 9):
            post.append(
                (
                    y0 - 9.0 * math.sin(math.pi * t) + 34.0 * t**4,
                    mid - (w0 + (hw - w0) * math.sin(t * math.pi / 2)),
                )
            )
        # anterior arc: from the lateral wall down and medially to the costochondral
        # junction (the cartilage beyond is not seen), ending lower for lower ribs
        y_lat, c_lat = post[-1]
        drop = 40.0 + 4.0 * k
        ant = []
        for t in np.linspace(0.0, 1.0, 7)[1:]:
            ant.append((y_lat + drop * t**0.7, c_lat + (hw * (0.55 if k else 0.62)) * t**1.1))
        pts = post + ant
        prims = [
            capsule(pts[i], pts[i + 1], 4.8 if i < len(post) - 1 else 5.5)
            for i in range(len(pts) - 1)
        ]
        left.append(BoneSpec(f"rib{k + 1}", prims, cortex_mm=1.5, cap_mm=4))
    head_c = (90.0, 32.0)
    hr = 24.0
    glen_c = (92.0, head_c[1] + hr + g + 6.5)
    left += [
        BoneSpec(
            "humerus",
            [
                ellipse(head_c, hr, hr - 1, cortex_mm=1.0),
                ellipse((80, 12), 14, 9, cortex_mm=1.0),
                capsule((110, 24), (270, 2), 16, 14, cortex_mm=4.5),
            ],
            cortex_mm=1.2,
            cap_mm=26,
        ),
        BoneSpec(
            "scapula",
            [
                polygon(
                    [
                        (70, glen_c[1] + 2),
                        (114, glen_c[1] + 2),
                        (218, 92),
                        (150, 114),
                        (58, 120),
                        (56, 96),
                    ],
                    cortex_mm=1.0,
                ),
                ellipse(glen_c, 21, 6.5, cortex_mm=1.5),
                capsule((56, 34), (74, 128), 7, 6, cortex_mm=1.5),  # acromion and spine
                capsule((84, 80), (74, 96), 5, 4, cortex_mm=1.2),  # coracoid
            ],
            cortex_mm=1.2,
            cap_mm=7,
            trab=1.4,
        ),
    ]
    g_sc = float(rng.uniform(2.5, 4.0))  # sternoclavicular joint space
    sc_end = (72.0, mid - 25 - g_sc - 7)
    left.append(
        BoneSpec(
            "clavicle",
            [
                ellipse(sc_end, 8, 7, cortex_mm=1.5),
                capsule(sc_end, (58, 120), 8, 9, cortex_mm=2.5),
                capsule((58, 120), (50, 52), 9, 7, cortex_mm=2.5),
            ],
            cortex_mm=2.0,
            cap_mm=9,
        )
    )
    joints: list[JointSpec] = []
    for side in ("left", "right"):
        for b in left:
            prims = b.prims if side == "left" else [_mirror_prim(p, width) for p in b.prims]
            bones.append(BoneSpec(f"{b.name}_{side}", prims, b.cortex_mm, b.cap_mm, b.trab))
        gh = (head_c[0], head_c[1] + hr + g / 2)
        sc = (sc_end[0], mid - 25 - g_sc / 2)
        if side == "right":
            gh, sc = _mirror(gh, width), _mirror(sc, width)
        joints += [
            JointSpec("shoulder", (f"humerus_{side}",), (f"scapula_{side}",), gh, 40, g),
            JointSpec("sternoclavicular", (f"clavicle_{side}",), ("manubrium",), sc, 14, g_sc),
        ]
    soft = [
        polygon(
            [
                (30, 160),
                (60, 60),
                (110, 30),
                (250, 26),
                (340, 34),
                (430, 44),
                (430, 376),
                (340, 386),
                (250, 394),
                (110, 390),
                (60, 360),
                (30, 260),
            ]
        ),
        capsule((-40, mid), (40, mid), 56, 60),  # neck
        capsule((55, 130), (70, 40), 36, 44),  # shoulder
        capsule((55, width - 130), (70, width - 40), 36, 44),
        capsule((72, 36), (330, -6), 44, 38),  # arm, running off the film
        capsule((72, width - 36), (330, width + 6), 44, 38),
    ]
    # lungs: apex above the clavicle, lateral edge inside the ribs, domed diaphragm,
    # medial edge the mediastinum (heart and aortic knob on the patient's left)
    right_lung = polygon(
        [
            (40, mid - 45),
            (52, mid - 92),
            (90, mid - 118),
            (150, mid - 136),
            (220, mid - 142),
            (290, mid - 142),
            (332, mid - 138),
            (312, mid - 110),
            (292, mid - 80),
            (290, mid - 58),
            (300, mid - 44),
            (240, mid - 40),
            (160, mid - 32),
            (90, mid - 28),
        ]
    )
    left_lung = polygon(
        [
            (40, mid + 45),
            (52, mid + 92),
            (90, mid + 118),
            (150, mid + 136),
            (220, mid + 142),
            (290, mid + 142),
            (340, mid + 138),
            (322, mid + 112),
            (310, mid + 100),
            (290, mid + 104),
            (250, mid + 86),
            (205, mid + 60),
            (165, mid + 44),
            (140, mid + 52),
            (115, mid + 48),
            (90, mid + 30),
        ]
    )
    gastric = ellipse((348, mid + 80), 14, 24)
    return Template(
        "chest_pa",
        "CHEST",
        "PA",
        (400.0, width),
        soft,
        105.0,
        bones,
        joints,
        lucent=[(right_lung, 150.0), (left_lung, 140.0), (gastric, 35.0)],
        extensor_joints=("shoulder",),
    )


ANATOMIES: dict[str, Callable[[np.random.Generator], Template]] = {
    "knee_ap": knee_ap,
    "knee_lat": knee_lat,
    "hand_pa": hand_pa,
    "shoulder_ap": shoulder_ap,
    "pelvis_ap": pelvis_ap,
    "elbow_ap": elbow_ap,
    "ankle_lat": ankle_lat,
    "leg_ap": leg_ap,
}

HELD_OUT_ANATOMIES: dict[str, Callable[[np.random.Generator], Template]] = {
    "foot_dp": foot_dp,
    "forearm_ap": forearm_ap,
    "chest_pa": chest_pa,
}
"""Templates the detector was never tuned on, to measure how it generalises. They are
kept out of :data:`ANATOMIES` (which the scenario table draws from) so that every
existing seed draws exactly as before; they appear only when asked for by name."""


def build_template(name: str, rng: np.random.Generator) -> Template:
    """The template ``name`` (one of :data:`ANATOMIES` or :data:`HELD_OUT_ANATOMIES`)."""
    fn = ANATOMIES.get(name) or HELD_OUT_ANATOMIES.get(name)
    if fn is None:
        raise ValueError(
            f"unknown anatomy {name!r}; expected one of {', '.join(ANATOMIES)} "
            f"or a held-out anatomy: {', '.join(HELD_OUT_ANATOMIES)}"
        )
    return fn(rng)
