"""``whizrouter new NAME``: a new bot project whose tests pass as soon as it is made.

The files come from the templates in ``whizrouter/scaffold_files/`` (``{{name}}`` and
``{{version}}`` filled in): a bot module with a router (``bot.py``), a test using the pytest
plugin's ``bot_tester`` fixture, a ``pyproject.toml``, a README with the two commands (run
with ``whizrouter dev``, test with ``pytest``), and a ``Dockerfile`` that runs ``whizrouter
run`` with the inbox on a volume.
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib import resources
from pathlib import Path
from typing import Any, Final

from whizrouter import __version__
from whizrouter.errors import WhizrouterError

#: Each template and where it goes in the new project.
FILES: Final = {
    "bot.py.tmpl": "bot.py",
    "test_bot.py.tmpl": "tests/test_bot.py",
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "Dockerfile.tmpl": "Dockerfile",
    "dockerignore.tmpl": ".dockerignore",
    "gitignore.tmpl": ".gitignore",
}
_NAME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


def create_project(name: str, parent: Path) -> Path:
    """Write a new bot project named ``name`` into ``parent / name``; return its directory.

    Raises:
        WhizrouterError: the name is not a usable project name, or the directory exists.
    """
    if not _NAME.match(name):
        raise WhizrouterError(
            f"{name!r} is not a usable project name; use letters, digits, '-' and '_', "
            "starting with a letter (such as my-bot)"
        )
    target = parent / name
    if target.exists():
        raise WhizrouterError(f"{target} exists already; choose another name or remove it")
    templates = resources.files("whizrouter") / "scaffold_files"
    for template, destination in FILES.items():
        text = (templates / template).read_text(encoding="utf-8")
        text = text.replace("{{name}}", name).replace("{{version}}", __version__)
        path = target / destination
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return target


def _run(args: argparse.Namespace) -> int:
    target = create_project(args.name, Path(args.directory))
    sys.stdout.write(
        f"created {target}\n\n"
        f"  cd {target}\n"
        "  pip install -e '.[test]'    # in the environment that has whizrouter\n"
        "  whizrouter dev bot.py:app   # run it; replies are printed without a provider key\n"
        "  python -m pytest            # test it\n"
    )
    return 0


def add_command(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Register ``whizrouter new`` on the ``whizrouter`` subcommands."""
    command = commands.add_parser(
        "new",
        parents=parents,
        help="create a new bot project (bot, test, pyproject.toml, README, Dockerfile)",
        description="Create the directory NAME holding a bot module with a router (bot.py), "
        "a test using the pytest plugin (tests/test_bot.py), a pyproject.toml, a README with "
        "the commands to run and test it, and a Dockerfile that runs `whizrouter run` with "
        "the inbox on a volume. Its tests pass as soon as it is created.",
    )
    command.add_argument("name", metavar="NAME", help="the project's name and directory")
    command.add_argument(
        "--directory", default=".", help="where to create it (the working directory)"
    )
    command.set_defaults(func=_run)
