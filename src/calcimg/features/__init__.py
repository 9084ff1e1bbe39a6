"""Research feature extraction: calcimg's measurements as tables to model on.

* :func:`region_features` measures every region of a label mask (shape in mm after
  pyradiomics shape2D, first-order intensity after pyradiomics firstorder, local
  contrast), whether the mask comes from the detector or from an expert.
* :func:`extract_features` / :func:`image_features` (and the generator twins) run the
  pipeline over files and return pandas DataFrames with provenance in every row.
* :data:`FEATURES` is the feature dictionary (``calcimg features --list``,
  ``docs/features.md``).

pandas is imported only when a DataFrame is asked for (extra ``calcimg[features]``).
"""

from __future__ import annotations

from calcimg.features.api import (
    extract_features,
    image_features,
    iter_features,
    iter_image_features,
)
from calcimg.features.masks import read_label_mask
from calcimg.features.region import FeatureParams, measure_regions, region_features
from calcimg.features.registry import FEATURES, Feature

__all__ = [
    "FEATURES",
    "Feature",
    "FeatureParams",
    "extract_features",
    "image_features",
    "iter_features",
    "iter_image_features",
    "measure_regions",
    "read_label_mask",
    "region_features",
]
