"""The documentation is true: its snippets type-check, its examples parse, its links resolve.

- Every fenced ``python`` block of the README, of ``docs/*.md`` and of ``benchmarks/README.md``
  is written as its own module and the lot is checked by one ``mypy --strict`` run (with the
  pyproject's mypy plugins), so a snippet copied into a project never fails its type check. A
  block fenced ``python fragment`` is deliberately incomplete: it is only parsed. A block fenced
  ``python bot.py`` is written as ``bot.py``, so other snippets can import from it (the README's
  test imports the README's bot).
- Every event example of ``docs/events.md`` fenced ``json <shape> <Class>`` is posted to a bot in
  that shape's envelope and must reach its handler as an instance of that class; every event
  class ``whizrouter`` exports has an example in both shapes.
- The docs index lists every page, and every relative link (and its ``#anchor``) resolves.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import orjson
import pytest

import whizrouter
from tests.process import ROOT
from whizrouter import Context, Message, Status, WhizRouter
from whizrouter.testing import BotTester

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks/README.md"]
PYTHON = {"python", "py", "python3"}
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
MYPY_LINE = re.compile(
    r"^(?P<file>[^:\s]+\.py):(?P<line>\d+):(?:\d+:)? (?P<kind>\w+): (?P<text>.*)$"
)


@dataclass(frozen=True, slots=True)
class Block:
    """A fenced code block: where it opens, its info string's words, its code (dedented)."""

    page: Path
    fence_line: int
    words: tuple[str, ...]
    code: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.fence_line}"

    @property
    def language(self) -> str:
        return self.words[0].lower() if self.words else ""


def fenced_blocks(page: Path) -> list[Block]:
    """The fenced blocks of a Markdown page, their lines stripped of the fence's indent."""
    blocks: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    number = 0  # lines read so far: the 1-based number of the line just read
    while number < len(lines):
        opening = FENCE.match(lines[number])
        number += 1
        if opening is None:
            continue
        fence_line, indent, fence = number, len(opening["indent"]), opening["fence"]
        body: list[str] = []
        while number < len(lines) and not lines[number].strip().startswith(fence):
            line = lines[number]
            body.append(line[indent:] if line[:indent].strip() == "" else line)
            number += 1
        assert number < len(lines), f"{page.relative_to(ROOT)}:{fence_line}: fence never closed"
        number += 1
        words = tuple(opening["info"].split())
        blocks.append(Block(page, fence_line, words, "\n".join(body) + "\n"))
    return blocks


def prose(page: Path) -> str:
    """A page's text outside its fenced blocks."""
    kept: list[str] = []
    fenced = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            kept.append(line)
    return "\n".join(kept)


def python_blocks() -> list[Block]:
    return [block for page in PAGES for block in fenced_blocks(page) if block.language in PYTHON]


def module_name(block: Block) -> str:
    """The file a block is written to: the name its fence gives, else one made from its place."""
    named = [word for word in block.words[1:] if word.endswith(".py")]
    if named:
        return named[0]
    slug = re.sub(r"[^a-z0-9]+", "_", str(block.page.relative_to(ROOT).with_suffix("")).lower())
    return f"snippet_{slug}_line{block.fence_line}.py"


def mypy_config(tmp_path: Path) -> Path:
    """The options of the project's own mypy run that matter for a snippet: strict, its plugins."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    config = tmp_path / "mypy.ini"
    config.write_text(
        "[mypy]\nstrict = True\n"
        f"python_version = {project.get('python_version', '3.11')}\n"
        f"plugins = {', '.join(project.get('plugins', []))}\n"
        f"cache_dir = {tmp_path / 'mypy-cache'}\n"
    )
    return config


@pytest.mark.timeout(300)
def test_every_python_snippet_passes_mypy_strict(tmp_path: Path) -> None:
    blocks = python_blocks()
    assert len(blocks) >= 15, f"found only {len(blocks)} python blocks: is the fence parser broken?"
    assert any(block.page.name == "README.md" and block.page.parent == ROOT for block in blocks)
    files: dict[str, Block] = {}
    for block in blocks:
        extra = [
            word for word in block.words[1:] if word != "fragment" and not word.endswith(".py")
        ]
        assert not extra, (
            f"{block.where}: unknown fence words {extra} (use `fragment` or a file name)"
        )
        if "fragment" in block.words:
            compile(
                block.code, block.where, "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
            )
            continue
        name = module_name(block)
        assert name not in files, f"{block.where} and {files[name].where} are both {name}"
        files[name] = block
        (tmp_path / name).write_text(block.code, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(mypy_config(tmp_path)), *sorted(files)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    problems = []
    for line in result.stdout.splitlines():
        found = MYPY_LINE.match(line)
        if found is None or found["file"] not in files:
            continue
        block = files[found["file"]]
        page_line = block.fence_line + int(found["line"])
        problems.append(
            f"{block.page.relative_to(ROOT)}:{page_line}: {found['kind']}: {found['text']} "
            f"(the block opening at line {block.fence_line})"
        )
    if result.returncode != 0:
        pytest.fail("\n".join(problems) or result.stdout + result.stderr, pytrace=False)


# --------------------------------------------------------------------------- event examples

ENVELOPE_METADATA = {"display_phone_number": "15550009999", "phone_number_id": "109876543210987"}


def in_envelope(shape: str, item: dict[str, Any], is_status: bool) -> dict[str, Any]:
    """The callback body around one message or status item, as ``docs/events.md`` shows it."""
    value: dict[str, Any] = {"statuses" if is_status else "messages": [item]}
    if shape == "onprem":
        return value
    value = {"messaging_product": "whatsapp", "metadata": ENVELOPE_METADATA, **value}
    changes = [{"field": "messages", "value": value}]
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102938475610293", "changes": changes}],
    }


def event_examples() -> list[tuple[Block, str, type[Any]]]:
    examples = []
    for block in fenced_blocks(ROOT / "docs/events.md"):
        if block.language == "json" and len(block.words) == 3:
            _, shape, class_name = block.words
            assert shape in ("onprem", "cloud"), f"{block.where}: shape {shape!r}"
            assert class_name in whizrouter.__all__, f"{block.where}: {class_name} is not exported"
            examples.append((block, shape, getattr(whizrouter, class_name)))
    return examples


def exported_event_classes() -> set[type[Any]]:
    classes = set()
    for name in whizrouter.__all__:
        value = getattr(whizrouter, name)
        if isinstance(value, type) and issubclass(value, Message | Status) and value is not Message:
            classes.add(value)
    return classes


def test_every_event_class_has_an_example_in_both_shapes() -> None:
    shown = {(shape, cls) for _, shape, cls in event_examples()}
    missing = sorted(
        f"{cls.__name__} ({shape})"
        for cls in exported_event_classes()
        for shape in ("onprem", "cloud")
        if (shape, cls) not in shown
    )
    assert not missing, f"docs/events.md has no example of {', '.join(missing)}"


async def test_every_event_example_becomes_its_class() -> None:
    app = WhizRouter(inbox="memory")
    seen: list[Any] = []

    @app.on_message()
    async def message(event: Message, ctx: Context) -> None:
        seen.append(event)

    @app.on_status()
    async def status(event: Status, ctx: Context) -> None:
        seen.append(event)

    examples = event_examples()
    assert len(examples) >= 2 * len(exported_event_classes())
    async with BotTester(app) as bot:
        for number, (block, shape, cls) in enumerate(examples):
            item = orjson.loads(block.code)
            # The inbox drops a redelivery by id: give every example its own.
            item["id"] = f"{item['id']}.{number}"
            seen.clear()
            await bot.send(in_envelope(shape, item, cls is Status))
            assert len(seen) == 1, f"{block.where}: {len(seen)} events reached the handlers"
            [event] = seen
            assert isinstance(event, cls), (
                f"{block.where}: a {type(event).__name__}, not a {cls.__name__}"
            )
            assert event.shape == shape, f"{block.where}: shape {event.shape}"
            if shape == "cloud":
                assert event.business.phone_number_id == ENVELOPE_METADATA["phone_number_id"]
            if isinstance(event, Message) and not isinstance(event, whizrouter.UnknownMessage):
                assert (event.type,) == get_args(cls.model_fields["type"].annotation), block.where


# --------------------------------------------------------------------------- pages and links

LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """The ``#anchors`` GitHub gives a page's headings."""
    found = set()
    for line in prose(page).splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    return found


def test_the_docs_index_lists_every_page_and_the_readme_links_the_index() -> None:
    index = (ROOT / "docs/README.md").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in sorted((ROOT / "docs").glob("*.md")):
        if page.name != "README.md":
            assert f"]({page.name})" in index, f"docs/README.md does not list {page.name}"
            assert f"](docs/{page.name})" in readme, f"README.md does not link docs/{page.name}"
    assert "](docs/README.md)" in readme
    assert "](benchmarks/README.md)" in readme


def test_every_relative_link_and_anchor_resolves() -> None:
    broken = []
    for page in PAGES:
        for found in LINK.finditer(prose(page)):
            target = found["target"]
            if re.match(r"^[a-z]+:", target):
                continue  # https:, mailto:
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)
