"""The wheel holds exactly the two packages and declares the plugin entry points."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_holds_exactly_whizrouter_and_whizrouter_plugins(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
    )
    [wheel] = tmp_path.glob("whizrouter-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        tops = {name.split("/")[0] for name in names if not name.endswith(".dist-info/")}
        dist_info = next(t for t in tops if t.endswith(".dist-info"))
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
    assert tops - {dist_info} == {"whizrouter", "whizrouter_plugins"}
    assert "whizrouter/py.typed" in names
    assert "whizrouter_plugins/mark_read.py" in names
    assert "mark-read = whizrouter_plugins.mark_read:MarkRead" in entry_points
    assert "whizrouter = whizrouter.testing.pytest_plugin" in entry_points
    assert "whizrouter = whizrouter.cli:main" in entry_points
