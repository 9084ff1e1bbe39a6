"""``calcimg analyze`` and ``calcimg validate`` as commands: crashes, interrupts, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from batchdata import (
    Folder,
    csv_without_timing,
    lines_without_timing,
    make_folder,
    write_radiograph,
)
from calcimg.report import FINDINGS_FILE, IMAGES_FILE, RESULTS_FILE

SRC = Path(__file__).resolve().parents[1] / "src"

# Loaded at start-up by every Python process of a test run (main and workers) through
# PYTHONPATH: makes the anatomy stage slow (so a run can be interrupted half-way) and
# kills the process outright, as a segfaulting decoder would, on files named crash*.
SITECUSTOMIZE = """
import os, time
import calcimg.pipeline as _p

_orig = _p.map_anatomy

def _patched(rg, *, params):
    if os.path.basename(rg.source).startswith("crash"):
        os._exit(139)
    time.sleep(float(os.environ.get("CALCIMG_TEST_STAGE_SLEEP", "0")))
    return _orig(rg, params=params)

_p.map_anatomy = _patched
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Folder:
    return make_folder(tmp_path_factory.mktemp("films") / "in", n=24)


def env(tmp_path: Path | None = None, *, sleep: float = 0.0) -> dict[str, str]:
    e = dict(os.environ)
    path = [str(SRC)]
    if tmp_path is not None:
        hook = tmp_path / "hook"
        hook.mkdir(exist_ok=True)
        (hook / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
        path.insert(0, str(hook))
    e["PYTHONPATH"] = os.pathsep.join(path)
    e["CALCIMG_TEST_STAGE_SLEEP"] = str(sleep)
    return e


def calcimg(*args: str, environ: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "calcimg", *args],
        env=environ or env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_without_out_prints_contract_lines(tmp_path: Path) -> None:
    good = write_radiograph(tmp_path / "a.dcm", 1)
    done = calcimg("analyze", str(good))
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    d = json.loads(line)
    assert (d["schema"], d["source"], d["status"]) == ("calcimg.result/1", str(good), "ok")
    assert "ok      " in done.stderr  # the human line goes to stderr


def test_exit_code_is_1_when_any_input_errors(folder: Folder, tmp_path: Path) -> None:
    done = calcimg("analyze", str(folder.root / "broken"), str(folder.good[0]), "--workers", "2")
    assert done.returncode == 1
    statuses = sorted(json.loads(x)["status"] for x in done.stdout.splitlines())
    assert statuses == ["error"] * 6 + ["ok"]


def test_validate_lists_what_would_be_analysed_and_why_not(folder: Folder) -> None:
    done = calcimg(
        "validate",
        str(folder.root / "study00"),
        str(folder.root / "other"),
        "--select",
        "modality=CR",
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    analyse = [x for x in lines if x.startswith("ANALYSE")]
    assert len(analyse) == 5 and "(CR, KNEE, KNEE AP; 1 frame(s))" in analyse[0]
    assert any("img003.dcm: not selected: (0008,0060) Modality is 'DX'" in x for x in lines)
    assert any(x.startswith("SKIP") and "test-SR.dcm" in x and "not an image" in x for x in lines)
    assert any(x.startswith("SKIP") and "ct.dcm" in x and "Modality is CT" in x for x in lines)
    assert lines[-1] == "11 input(s): 5 to analyse, 0 repeated, 6 skipped, 0 unreadable"


def test_validate_json_and_unreadable_inputs(folder: Folder) -> None:
    done = calcimg("validate", str(folder.root / "broken"), "--json")
    assert done.returncode == 1
    entries = [json.loads(x) for x in done.stdout.splitlines()]
    actions = {Path(e["source"]).name: e["action"] for e in entries}
    assert actions["no_meta.dcm"] == "error" and actions["MR_truncated.dcm"] == "error"
    # Corrupt codestreams have sound headers: only decoding finds them out.
    assert actions["DX_966_corrupt_j2k.dcm"] == "analyse"


def test_select_option_on_analyze(folder: Folder, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = calcimg(
        "analyze", str(folder.root / "study01"), "--out", str(out), "--workers", "2",
        "--select", "body_part=HAND,SHOULDER", "--no-report",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = csv_without_timing(out / IMAGES_FILE)
    kept = sorted(r["body_part"] for r in rows if r["status"] == "ok")
    assert kept == ["HAND", "HAND", "SHOULDER", "SHOULDER"]
    assert [r["error_type"] for r in rows if r["status"] == "skipped"] == ["NotSelectedError"] * 2
    assert not (out / "report.html").exists()


@pytest.mark.slow
def test_a_worker_crash_becomes_an_error_result_and_the_batch_goes_on(tmp_path: Path) -> None:
    src = tmp_path / "in"
    for i in range(6):
        write_radiograph(src / f"img{i}.dcm", 100 + i)
    write_radiograph(src / "crash_decoder.dcm", 200)
    out = tmp_path / "out"
    done = calcimg("analyze", str(src), "--out", str(out), "--workers", "2", environ=env(tmp_path))
    assert done.returncode == 1, done.stderr
    assert (out / IMAGES_FILE).exists(), done.stdout + done.stderr
    rows = {Path(r["source"]).name: r for r in csv_without_timing(out / IMAGES_FILE)}
    assert len(rows) == 7
    crash = rows["crash_decoder.dcm"]
    assert crash["status"] == "error" and crash["error_type"] == "StageError"
    assert "worker process analysing this file died" in crash["error_message"]
    assert all(rows[f"img{i}.dcm"]["status"] == "ok" for i in range(6))
    assert "ERROR   " in done.stdout and "crash_decoder.dcm" in done.stdout


def _start(args: list[str], environ: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "calcimg", *args],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the test signals only its run
    )


def _wait_for_lines(path: Path, n: int, proc: subprocess.Popen[str], timeout: float = 120) -> int:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists():
            count = path.read_bytes().count(b"\n")
            if count >= n:
                return count
        if proc.poll() is not None:
            pytest.fail(
                f"the run ended before {n} results: {proc.stderr.read() if proc.stderr else ''}"
            )
        time.sleep(0.01)
    pytest.fail(f"fewer than {n} results after {timeout} s")


def _group_gone(pgid: int, timeout: float = 20) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_a_rerun_resumes(folder: Folder, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["analyze", str(folder.root), "--out", str(out), "--workers", "2"]
    proc = _start(args, env(tmp_path, sleep=0.3))
    _wait_for_lines(out / RESULTS_FILE, 4, proc)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    text, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "INTERRUPTED (re-run to resume)" in text
    assert "Traceback" not in err
    assert _group_gone(proc.pid), "worker processes outlived the interrupted run"
    lines = (out / RESULTS_FILE).read_text().splitlines()
    assert 4 <= len(lines) < folder.n_inputs
    assert all(json.loads(x)["schema"] == "calcimg.result/1" for x in lines)
    again = calcimg(*args, environ=env(tmp_path))
    assert again.returncode == 1  # the broken files
    n_done = int(next(x for x in again.stdout.splitlines() if "already done" in x).split()[-1])
    assert n_done >= len(lines) - 3  # every input whose lines were written (duplicates too)
    assert len(csv_without_timing(out / IMAGES_FILE)) == folder.n_inputs


@pytest.mark.slow
def test_killed_run_resumed_equals_an_uninterrupted_run(folder: Folder, tmp_path: Path) -> None:
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    base = ["analyze", str(folder.root), "--workers", "2"]
    done = calcimg(*base, "--out", str(full), environ=env(tmp_path))
    assert done.returncode == 1  # the broken files

    proc = _start([*base, "--out", str(resumed)], env(tmp_path, sleep=0.3))
    _wait_for_lines(resumed / RESULTS_FILE, folder.n_inputs // 2, proc)
    os.killpg(proc.pid, signal.SIGKILL)  # no chance to clean up
    proc.communicate(timeout=60)
    assert _group_gone(proc.pid)
    written = (resumed / RESULTS_FILE).read_bytes().count(b"\n")
    assert written < folder.n_inputs, "the run finished before it was killed"

    again = calcimg(*base, "--out", str(resumed), environ=env(tmp_path))
    assert again.returncode == 1, again.stderr
    full_lines = {x.replace(str(full), "") for x in lines_without_timing(full)}
    resumed_lines = {x.replace(str(resumed), "") for x in lines_without_timing(resumed)}
    assert resumed_lines == full_lines
    for name in (IMAGES_FILE, FINDINGS_FILE):
        assert csv_without_timing(resumed / name) == csv_without_timing(full / name)
