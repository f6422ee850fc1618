"""``whizrouter new``: the project it makes passes its own tests with its README's command."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from whizrouter import __version__
from whizrouter.cli import main


@pytest.mark.slow
def test_a_new_project_passes_its_own_tests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new", "demo", "--directory", str(tmp_path)]) == 0
    assert "whizrouter dev bot.py:app" in capsys.readouterr().out
    project = tmp_path / "demo"
    readme = (project / "README.md").read_text()
    # The README's test command, run as written, in an environment that has whizrouter.
    (test_command,) = re.findall(r"```bash\n(python -m pytest)\n```", readme)
    assert "```bash\nwhizrouter dev bot.py:app\n```" in readme
    result = subprocess.run(
        [sys.executable, *test_command.split()[1:], "-q", "-p", "no:randomly"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    # The new project's code is as clean as ours.
    for check in (["check", "."], ["format", "--check", "."]):
        linted = subprocess.run(
            [sys.executable, "-m", "ruff", *check], cwd=project, capture_output=True, text=True
        )
        assert linted.returncode == 0, linted.stdout + linted.stderr
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == "demo"
    assert pyproject["project"]["dependencies"] == [f"whizrouter>={__version__}"]
    dockerfile = (project / "Dockerfile").read_text()
    assert 'CMD ["whizrouter", "run", "bot:app", "--port", "8080"]' in dockerfile
    assert "VOLUME /data" in dockerfile
    assert "WHIZROUTER_INBOX=sqlite:////data/inbox.db" in dockerfile


def test_a_bad_name_or_an_existing_directory_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert main(["new", "../up", "--directory", str(tmp_path)]) == 1
    assert "not a usable project name" in caplog.text
    (tmp_path / "taken").mkdir()
    assert main(["new", "taken", "--directory", str(tmp_path)]) == 1
    assert "exists already" in caplog.text
