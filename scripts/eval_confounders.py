"""How well ``map_anatomy`` lists foreign bodies, against a generated set's truth.

For every ``NAME.dcm`` with a ``NAME.truth.json`` in FOLDER, the anatomy map's confounders
are compared with the truth's foreign objects (kinds ``marker``, ``text``, ``metal``; the
other truth kinds -- overlap, sesamoid, osteophyte, collimation, ... -- are not foreign).
A truth object is found when a listed confounder's box overlaps its box: "same kind"
counts only a listed confounder of the truth's kind, "any kind" any foreign kind. A listed
foreign confounder (not collimation) whose box overlaps no truth foreign object is a false
entry. "entries/object" is the number of listed entries overlapping each found object (1 =
one entry per object; more = fragments). Prints one line per kind and, with ``-v``, every
miss and false entry.

    PYTHONPATH=src .venv/bin/python scripts/eval_confounders.py /work/data/tune [-v] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

FOREIGN_KINDS = ("marker", "text", "metal")

Box = tuple[int, int, int, int]


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def listed_confounders(dcm: Path) -> list[dict[str, Any]]:
    """The confounders ``map_anatomy`` lists for one file, as dicts."""
    from calcimg.anatomy import map_anatomy
    from calcimg.config import load_config
    from calcimg.ingest import read_radiograph

    config = load_config()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rg = read_radiograph(dcm, params=config.ingest)
    amap = map_anatomy(rg, params=config.anatomy)
    return [c.to_dict() for c in amap.confounders]


def score(truth: list[dict[str, Any]], listed: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-image tallies: found (same kind, any kind), entries per object, false entries."""
    t_obj = [t for t in truth if t["kind"] in FOREIGN_KINDS]
    l_obj = [c for c in listed if c["kind"] != "collimation"]
    out: dict[str, Any] = {"truth": Counter(), "same": Counter(), "any": Counter()}
    out["entries"] = Counter()
    out["misses"] = []
    for t in t_obj:
        tb = tuple(t["bbox"])
        hits = [c for c in l_obj if _overlap(tb, tuple(c["bbox"]))]  # type: ignore[arg-type]
        k = t["kind"]
        out["truth"][k] += 1
        same = [c for c in hits if c["kind"] == k]
        out["same"][k] += bool(same)
        out["any"][k] += bool(hits)
        if hits:
            out["entries"][k] += len(hits)
        if not same:
            out["misses"].append((k, tb, [c["kind"] for c in hits]))
    out["false"] = [
        c
        for c in l_obj
        if not any(_overlap(tuple(c["bbox"]), tuple(t["bbox"])) for t in t_obj)  # type: ignore[arg-type]
    ]
    return out


def _one(dcm: Path) -> tuple[str, dict[str, Any]]:
    truth = json.loads(dcm.with_suffix(".truth.json").read_text())["confounders"]
    return dcm.name, score(truth, listed_confounders(dcm))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    files = sorted(f for f in args.folder.glob("*.dcm") if f.with_suffix(".truth.json").is_file())
    if not files:
        print(f"{args.folder}: no NAME.dcm with NAME.truth.json", file=sys.stderr)
        return 2
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as ex:
            results = list(ex.map(_one, files))
    else:
        results = [_one(f) for f in files]
    tot: dict[str, Counter[str]] = {k: Counter() for k in ("truth", "same", "any", "entries")}
    false: Counter[str] = Counter()
    for name, r in results:
        for k in tot:
            tot[k].update(r[k])
        false.update(c["kind"] for c in r["false"])
        if args.verbose:
            for kind, box, got in r["misses"]:
                print(f"  miss  {name} {kind} {list(box)} listed as {got or '-'}")
            for c in r["false"]:
                print(f"  false {name} {c['kind']} {c['bbox']} {c['area_mm2']} mm2")
    n = len(results)
    print(f"{n} images")
    print(f"{'kind':8s} {'truth':>5s} {'same kind':>10s} {'any kind':>9s} {'entries/object':>15s}")
    for k in FOREIGN_KINDS:
        t = tot["truth"][k]
        if not t:
            continue
        found = tot["any"][k]
        per = tot["entries"][k] / found if found else float("nan")
        print(f"{k:8s} {t:5d} {tot['same'][k] / t:10.2f} {found / t:9.2f} {per:15.2f}")
    t_all = sum(tot["truth"].values())
    print(
        f"{'all':8s} {t_all:5d} {sum(tot['same'].values()) / t_all:10.2f} "
        f"{sum(tot['any'].values()) / t_all:9.2f} "
        f"{sum(tot['entries'].values()) / max(sum(tot['any'].values()), 1):15.2f}"
    )
    print(
        f"false entries per image: {sum(false.values()) / n:.2f} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(false.items())) or 'none'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
