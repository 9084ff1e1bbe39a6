"""Simulated radiographs with exact ground truth (issue 3).

Physics in millimetres: an attenuation map of soft tissue (fat, muscle, skin) and bone
(cortical shell, trabecular texture) with joint spaces; calcifications of the five
DOMAIN.md patterns and the confounders of a real film; projection with heel effect,
scatter, quantum noise, detector blur, log transform and workstation equalisation;
written as CR or DX DICOM in five transfer syntaxes with a truth sidecar.

Pure numpy / scipy / OpenCV; deterministic for a seed. Used by
``scripts/make_samples.py`` and the tests; not imported by the pipeline.
"""

from __future__ import annotations

from calcimg.synth.generate import SCENARIOS, TRUTH_SCHEMA, Sample, generate, write_sample

__all__ = ["SCENARIOS", "TRUTH_SCHEMA", "Sample", "generate", "write_sample"]
