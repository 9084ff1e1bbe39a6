"""The plan of the committed ``sample_dicoms/`` set: per seed the anatomy, scenario,
transfer syntax and the confounders it must show, so that the 16 files cover every
pattern, every confounder kind, every transfer syntax and at least 3 negatives."""

from __future__ import annotations

__all__ = ["SAMPLE_MAX_SIDE_PX", "SAMPLE_PLAN"]

SAMPLE_MAX_SIDE_PX = 1400
"""Sample films are smaller than the tuning sets so the committed set stays < 25 MB."""

# seed: (anatomy, scenario, transfer syntax, forced confounders)
SAMPLE_PLAN: dict[int, tuple[str, str, str, tuple[str, ...]]] = {
    1: ("knee_ap", "chondrocalcinosis_cppd", "jpeg_ls", ("osteophyte", "marker")),
    2: ("pelvis_ap", "phlebolith", "jpeg2000", ("text", "marker")),
    3: ("hand_pa", "calcinosis_circumscripta", "rle", ("metal:ring", "sesamoid")),
    4: ("leg_ap", "vascular_arterial", "jpeg_lossless_sv1", ("skin_fold", "collimation")),
    5: ("shoulder_ap", "tumoral_calcinosis", "jpeg_ls", ("metal:clips", "marker")),
    6: ("knee_lat", "synovial_chondromatosis", "jpeg2000", ("sesamoid", "collimation")),
    7: ("knee_ap", "metastatic", "rle", ("bone_island", "text")),
    8: ("elbow_ap", "dystrophic", "explicit_le", ("heterotopic_ossification",)),
    9: ("ankle_lat", "negative", "jpeg_ls", ("sesamoid", "metal:pin")),
    10: ("hand_pa", "negative", "jpeg_lossless_sv1", ("metal:bracelet", "text")),
    11: ("pelvis_ap", "negative", "jpeg2000", ("metal:button", "collimation")),
    12: ("leg_ap", "calcinosis_universalis", "jpeg_ls", ("metal:pin", "marker")),
    13: ("hand_pa", "chondrocalcinosis_cppd", "rle", ("marker",)),
    14: ("ankle_lat", "iatrogenic", "jpeg2000", ("skin_fold", "marker")),
    15: (
        "knee_ap",
        "vascular_arterial",
        "jpeg_lossless_sv1",
        ("heterotopic_ossification", "metal:zip"),
    ),
    16: ("elbow_ap", "synovial_chondromatosis", "explicit_le", ("osteophyte", "text")),
}
