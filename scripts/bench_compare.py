"""Time the analysis (anatomy + detection) of two source trees fairly, in alternation.

Two trees loaded into one process do not time alike: the one loaded second ran 50-75 ms
faster on the same code (session 34). Each measurement here is a fresh process that loads
one tree only (``TREE/src`` and ``TREE/scripts`` first on its path). The trees take turns,
each pair starting with the other tree, so that the machine's drift falls on both. Each
process times ``--runs`` films after one untimed warm-up film, with OpenCV on one thread,
as ``scripts/bench_detect.py`` does, and reports its median.

    PYTHONPATH=src python scripts/bench_compare.py OLD_TREE NEW_TREE [--pairs 10]
        [--runs 3] [--source RG1_UNCR.dcm] [--size 3000]

A tree is a checkout of calcimg (``git worktree add /tmp/old REV``). The figure to quote
is the median of the paired differences (old minus new) with its range: a difference
smaller than that range is the machine's noise, not a saving.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

# the timing loop is written out rather than imported: the old checkout's
# scripts/bench_detect.py has only film() to offer, and both sides must run the same loop
_WORKER = r"""
import dataclasses, json, statistics, sys, time
import cv2
from bench_detect import film
from calcimg.anatomy import map_anatomy
from calcimg.config import load_config
from calcimg.detect import detect

cv2.setNumThreads(1)
source, size, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
config = load_config()
rg = film(size, source)
times = []
for k in range(runs + 1):
    # a new film each run, as scripts/bench_detect.py: the bone model's planes are kept
    # for the last film, and a run must pay for them
    rg = dataclasses.replace(rg, pixels=rg.pixels.copy())
    t0 = time.perf_counter()
    detect(rg, map_anatomy(rg, params=config.anatomy), params=config.detect)
    if k:  # the first film warms the caches (models, imports): not timed
        times.append(time.perf_counter() - t0)
print(json.dumps({"median": statistics.median(times), "times": times}))
"""


def run_tree(tree: Path, source: str, size: int, runs: int) -> float:
    """Median seconds per film of ``runs`` films, timed in a fresh process on ``tree``.

    Raises
    ------
    SystemExit
        When the process fails (its stderr's last lines are shown).
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tree / "src"), str(tree / "scripts")])
    proc = subprocess.run(
        [sys.executable, "-c", _WORKER, source, str(size), str(runs)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tree,
        check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise SystemExit(f"{tree}: the timing process failed (exit {proc.returncode}):\n{tail}")
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["median"])


def check_tree(tree: Path) -> Path:
    """``tree`` resolved, or SystemExit naming what is missing."""
    for part in ("src/calcimg", "scripts/bench_detect.py"):
        if not (tree / part).exists():
            raise SystemExit(f"{tree}: expected a calcimg checkout holding {part}, found none")
    return tree.resolve()


def summary(old: list[float], new: list[float]) -> str:
    """The report: each tree's median, and the paired differences (old - new)."""
    diff = [a - b for a, b in zip(old, new, strict=True)]
    return (
        f"old median {statistics.median(old):.3f} s (min {min(old):.3f}), "
        f"new median {statistics.median(new):.3f} s (min {min(new):.3f}); "
        f"paired old - new: median {1000 * statistics.median(diff):+.0f} ms, "
        f"range {1000 * min(diff):+.0f} to {1000 * max(diff):+.0f} ms over {len(diff)} pairs"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path, help="checkout of the code to compare against")
    ap.add_argument("new", type=Path, help="checkout of the changed code")
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3, help="timed films per process")
    ap.add_argument("--source", default="RG1_UNCR.dcm", help="pydicom-data film to resample")
    ap.add_argument("--size", type=int, default=3000)
    args = ap.parse_args(argv)
    if args.pairs < 1 or args.runs < 1:
        raise SystemExit("--pairs and --runs: expected at least 1")
    trees = {"old": check_tree(args.old), "new": check_tree(args.new)}
    got: dict[str, list[float]] = {"old": [], "new": []}
    for i in range(args.pairs):
        for name in ("old", "new") if i % 2 == 0 else ("new", "old"):
            got[name].append(run_tree(trees[name], args.source, args.size, args.runs))
        print(
            f"pair {i + 1}: old {got['old'][-1]:.3f} s, new {got['new'][-1]:.3f} s",
            file=sys.stderr,
            flush=True,
        )
    print(f"{args.source} {args.size}x{args.size}, 1 thread: " + summary(got["old"], got["new"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
