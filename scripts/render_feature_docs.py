"""Write docs/features.md: the prose below plus the feature dictionary's tables.

Usage: PYTHONPATH=src python scripts/render_feature_docs.py
"""

from __future__ import annotations

from pathlib import Path

from calcimg.features.registry import render_markdown

INTRO = """\
# Research features (`calcimg features`)

calcimg's measurements as tables to model on: one row per finding (or per region of
your own label mask) or one row per image, with provenance in every row. This page is
generated from the feature registry (`calcimg/features/registry.py`) by
`scripts/render_feature_docs.py`; `calcimg features --list` prints the same dictionary.

## Use

```
pip install 'calcimg[features]'           # pandas + pyarrow

calcimg features scans/ --out features.csv                    # one row per finding
calcimg features scans/ --out images.parquet --level image    # one row per image
calcimg features knee.dcm --mask knee_labels.png --out f.csv  # your own regions
calcimg features batch.csv --out f.parquet --jobs 2           # pyradiomics-style batch
calcimg features scans/ --out f.csv --pseudonymize "$SALT"    # tables that leave the site
calcimg features --list                                       # the dictionary below
```

```python
import calcimg
df = calcimg.extract_features("scans/", params={"bin_width": 10})   # per finding
img = calcimg.image_features("scans/")                              # per image
for row in calcimg.iter_features("huge_archive/"):                  # one dict at a time
    ...
from calcimg.features import region_features                        # no detector at all
rows = region_features(radiograph, label_mask)                      # list of dicts
```

* **Inputs**: DICOM files, folders (recursive), DICOMDIRs, PNG/TIFF exports, or a batch
  CSV with an `Image` column and an optional `Mask` column (relative paths are relative
  to the CSV's folder). Every other column of the batch CSV is copied unchanged into
  each row of that image (it must not clash with calcimg's own column names).
* **User masks**: an integer label image the size of the radiograph (0 background,
  k > 0 region k): PNG/TIFF (8/16 bit), NRRD/NIfTI/MHA when SimpleITK is installed
  (`pip install SimpleITK`; optional), or a DICOM SEG (highdicom; the frames that
  reference the image's SOP Instance UID, each segment's number as its label). A mask
  of another size is an error row naming both sizes. A 2-D mask annotates frame 0 of a
  multi-frame image. Without a mask, the regions are the detector's findings
  (`Result.label_mask`); both go through the same `region_features`.
* **Rows**: finding level has one row per region; an image without regions, or an
  input that failed, gives one row with `finding_id` empty and `status`/`error` set
  (the API drops those unless `include_empty=True`). Image level has one row per image
  (per frame).
* **Resuming**: rows are written as each image is done (CSV appended and flushed;
  Parquet as part files in `OUT.parts/`, merged into `OUT` at the end or on the next
  run). A rerun with the same `--out` skips every input whose (`input_hash`,
  `mask_hash`) is already in the table, including inputs that errored; `--overwrite`
  starts a new table. With `--pseudonymize`, resume with the same salt.
* **Parameters**: `--set features.bin_width=10` (also `voxel_array_shift`,
  `ring_width_mm`, `ring_gap_mm`, `min_ring_pixels`, `site_distance_mm`,
  `ring_soft_tissue_only`); the pipeline's own `--set`/`--config` as for
  `calcimg analyze`. `params_hash` covers both.
* **Anatomy**: the contrast ring is restricted to soft tissue and joint space, and the
  image-level burden divides by the soft-tissue area (anatomy Region 1 soft tissue plus
  3 joint space). The Result does not carry the anatomy map, so the extractor maps the
  anatomy once more per image (`--set features.ring_soft_tissue_only=false` skips it at
  finding level). `region_features(radiograph, mask, ring_mask=...)` takes any mask.

## Tables for the synthetic samples

`scripts/sample_features.py FOLDER OUTDIR` writes, for a folder of synthetic samples
(`sample_dicoms/`, `/work/data/tune`, ...), a batch CSV pairing each `NAME.dcm` with its
truth mask `NAME.mask.png` (plus `seed`, `anatomy`, `truth_flag` copied into the rows),
and six tables: `truth_findings`, `detector_findings` and `detector_images`, each as
`.csv` and `.parquet`. On the first 36 tuning samples every one of the 32 truth lesions
came out with `area_mm2` within 1 % of the generator's own `area_mm2` and the same
`n_particles`.

```
PYTHONPATH=src python scripts/sample_features.py sample_dicoms/ out/sample_features
```

## Pseudonymisation

`--pseudonymize SALT` replaces, in every row, `source` (file names often embed names,
MRNs or accession numbers), `mask`, `patient_id`, `patient_name`, `accession_number`,
`study_instance_uid`, `series_instance_uid`, `sop_instance_uid`, `input_hash` and
`mask_hash` by `HMAC-SHA256(SALT, value)` truncated to 16 hex characters. The same salt
gives the same pseudonyms (tables from several runs still join); without the salt they
can be neither reversed nor confirmed by hashing a guess or a file. The mapping is never
written. Columns copied from a batch CSV are yours and are written as given: leave
identifiers out of the batch file. Dates are not written at all.

## Agreement with pyradiomics

Shape features follow pyradiomics 3.1 `shape2D` and intensity features `firstorder`
exactly (closed-form sums over the marching-squares configurations instead of its C
loops). Against a locally built pyradiomics 3.1.0 (its PyPI sdist does not build as
published), every overlapping feature agreed to a relative 3e-13 on disks, rectangles,
lines, random speckle, an ellipse with a hole and a saddle configuration, at isotropic
(0.1 mm) and anisotropic (0.15 x 0.2 mm) spacing. `tests/test_features.py` repeats the
comparison (1 % tolerance) when `radiomics` is importable and checks hand-computed
values on drawn shapes otherwise.

Intensities are calcimg's canonical values (stored values after the Modality LUT,
MONOCHROME1 inverted so that higher is denser), not Hounsfield units: radiograph values
are not calibrated across devices, so compare intensity features within a device and
protocol, or use `contrast_norm` and `cnr`.

## The dictionary
"""


def main() -> None:
    out = Path(__file__).resolve().parents[1] / "docs" / "features.md"
    out.write_text(INTRO + "\n" + render_markdown(), encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
