"""Import a file of ``scripts/`` as a module (the scripts are not a package), and give the
scripts a truth folder of bundled sample films to run on."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def load_script(name: str) -> Any:
    """``scripts/NAME.py`` imported as the module ``NAME``, with ``scripts/`` on the import
    path as running it would put it (scripts import their siblings: ``train_bone`` imports
    ``train_describe``)."""
    if str(REPO / "scripts") not in sys.path:
        sys.path.insert(0, str(REPO / "scripts"))
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def sample_folder(dst: Path, names: tuple[str, ...]) -> Path:
    """A new folder ``dst`` holding the bundled ``sample_dicoms/NAME.*`` files (film and
    truth) of each name: a small truth folder for the scripts that read one."""
    dst.mkdir()
    for name in names:
        for f in (REPO / "sample_dicoms").glob(name + ".*"):
            shutil.copy(f, dst / f.name)
    return dst
