"""``whizrouter run`` on a bot module that cannot be imported says why, with its traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from whizrouter.cli import main


def test_an_import_error_inside_the_bot_shows_its_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "needs_a_package.py").write_text(
        "from whizrouter import WhizRouter\n"
        "import a_package_nobody_installed\n"
        "app = WhizRouter(inbox='memory')\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "needs_a_package", raising=False)
    assert main(["run", "needs_a_package:app"]) == 2
    assert "importing 'needs_a_package' failed" in caplog.text
    assert "Traceback (most recent call last)" in caplog.text
    assert 'needs_a_package.py", line 2, in <module>' in caplog.text
    assert "No module named 'a_package_nobody_installed'" in caplog.text
    assert "run from the directory that holds it" not in caplog.text
    assert "importlib" not in caplog.text  # only the bot's own frames


def test_any_other_error_of_the_bot_module_shows_its_traceback_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    bot = tmp_path / "typo_bot.py"
    bot.write_text("from whizrouter import WhizRouter\napp = WhizRoutre()\n")
    monkeypatch.delitem(sys.modules, "typo_bot", raising=False)
    assert main(["run", f"{bot}:app"]) == 2
    assert "NameError: name 'WhizRoutre' is not defined" in caplog.text
    assert 'typo_bot.py", line 2, in <module>' in caplog.text


def test_a_module_that_is_not_there_still_says_where_to_run_from(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert main(["run", "no_such_package_here.bot:app"]) == 2
    assert "cannot import 'no_such_package_here.bot'" in caplog.text
    assert "run from the directory that holds it" in caplog.text
    assert "Traceback" not in caplog.text
