"""Generate simulated radiographs with truth: NAME.dcm, .truth.json, .mask.png, .anatomy.png.

Usage::

    PYTHONPATH=src python scripts/make_samples.py --out /work/data/tune --seeds 1000-1059 --jobs 2
    PYTHONPATH=src python scripts/make_samples.py --out sample_dicoms --plan --jobs 2

Names are ``synth_SEED`` so that regenerating keeps them stable.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


def _parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-", 1)
            seeds += list(range(int(a), int(b) + 1))
        elif part:
            seeds.append(int(part))
    return seeds


def _one(args: tuple[int, str, int, str | None, str | None, bool]) -> str:
    seed, out, max_side, anatomy, scenario, planned = args
    from calcimg.synth import generate, write_sample
    from calcimg.synth.plan import SAMPLE_MAX_SIDE_PX, SAMPLE_PLAN

    t0 = time.perf_counter()
    if planned:
        anat, scen, ts, force = SAMPLE_PLAN[seed]
        sample = generate(
            seed,
            max_side_px=SAMPLE_MAX_SIDE_PX,
            anatomy=anat,
            scenario=scen,
            transfer_syntax=ts,
            force=force,
            bits=12,  # compresses best: keeps the committed set small
            fov_scale=0.85,
        )
    else:
        sample = generate(seed, max_side_px=max_side, anatomy=anatomy, scenario=scenario)
    path = write_sample(sample, Path(out))
    n = len(sample.truth["lesions"])
    return (
        f"{path.name}: {sample.anatomy} {sample.scenario} lesions={n} "
        f"{sample.pixels.shape[0]}x{sample.pixels.shape[1]} @{sample.spacing_mm} mm "
        f"{sample.options.transfer_syntax} {time.perf_counter() - t0:.1f}s"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seeds", default=None, help="e.g. 1000-1059 or 1,2,5-9")
    p.add_argument(
        "--plan",
        action="store_true",
        help="the committed sample_dicoms/ set: seeds, anatomies, scenarios of synth.plan",
    )
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--max-side", type=int, default=2400, help="longest image side in pixels")
    p.add_argument("--anatomy", default=None)
    p.add_argument("--scenario", default=None)
    a = p.parse_args(argv)
    if a.plan:
        from calcimg.synth.plan import SAMPLE_PLAN

        seeds = _parse_seeds(a.seeds) if a.seeds else sorted(SAMPLE_PLAN)
    elif a.seeds:
        seeds = _parse_seeds(a.seeds)
    else:
        p.error("give --seeds or --plan")
    t0 = time.perf_counter()
    work = [(s, a.out, a.max_side, a.anatomy, a.scenario, a.plan) for s in seeds]
    if a.jobs > 1:
        with ProcessPoolExecutor(a.jobs) as ex:
            for line in ex.map(_one, work):
                print(line, flush=True)
    else:
        for w in work:
            print(_one(w), flush=True)
    print(f"{len(seeds)} samples in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
