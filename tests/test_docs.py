"""Every Python block of README.md and docs/*.md type-checks with `mypy --strict`.

A block is checked as a module of its own. Two HTML comments on the line before a block change
that: ``<!-- continued -->`` appends it to the previous block of the same file (a walkthrough
that builds on what came before), and ``<!-- fragment -->`` leaves it out (a part that cannot
stand alone; prefer a complete block). A block with a top-level ``await`` is checked as the body of
an async function (the asyncio REPL runs it as it is). A failure names the file, the block's
first line and the line in the Markdown file where mypy found the problem.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```", re.M | re.S)
PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto"]
MARKER = re.compile(r"<!--\s*(fragment|continued)\s*-->\s*\Z")


@dataclass
class Block:
    """Python code made of one or more Markdown blocks; ``lines`` maps its lines to the doc's."""

    doc: Path
    start: int  # the doc line of the first block's first code line
    code: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.start}"

    def add(self, text: str, first_line: int) -> None:
        for i, line in enumerate(text.splitlines()):
            self.code.append(line)
            self.lines.append(first_line + i)


def python_blocks(doc: Path) -> list[Block]:
    """The doc's Python blocks, fragments left out, continued blocks joined to the previous."""
    text = doc.read_text(encoding="utf-8")
    blocks: list[Block] = []
    for match in FENCE.finditer(text):
        first_line = text.count("\n", 0, match.start(1)) + 1
        marker = MARKER.search(text[: match.start()].rstrip(" \t\n")[-80:])
        kind = marker.group(1) if marker else None
        if kind == "fragment":
            continue
        if kind == "continued":
            if not blocks:
                raise ValueError(
                    f"{doc.name}:{first_line}: <!-- continued --> needs a block before"
                )
            blocks[-1].add(match.group(1), first_line)
            continue
        block = Block(doc, first_line)
        block.add(match.group(1), first_line)
        blocks.append(block)
    return blocks


def test_docs_have_python_blocks_to_check() -> None:
    assert sum(len(python_blocks(doc)) for doc in DOCS) >= 10


def test_markers_join_and_skip_blocks(tmp_path: Path) -> None:
    doc = tmp_path / "guide.md"
    doc.write_text(
        "```python\nx = 1\n```\n<!-- continued -->\n```python\ny = x\n```\n"
        "<!-- fragment -->\n```python\nnot python\n```\n```python\nz = 2\n```\n"
    )
    blocks = python_blocks(doc)
    assert [b.code for b in blocks] == [["x = 1", "y = x"], ["z = 2"]]
    assert blocks[0].lines == [2, 6]


def _module_name(block: Block, index: int) -> str:
    stem = re.sub(r"\W", "_", block.doc.stem.lower())
    return f"doc_{stem}_{index:02d}"


def test_every_python_block_passes_mypy_strict(tmp_path: Path) -> None:
    modules: dict[str, Block] = {}
    problems = []
    for doc in DOCS:
        for index, block in enumerate(python_blocks(doc)):
            try:
                code = _checkable(block)
            except SyntaxError as e:  # mypy would stop at it, checking nothing else
                line = block.lines[min(len(block.lines), e.lineno or 1) - 1]
                problems.append(f"{_where(block, line)}: syntax error: {e.msg}")
                continue
            name = _module_name(block, index)
            (tmp_path / f"{name}.py").write_text(code, encoding="utf-8")
            modules[name] = block
    command = [sys.executable, "-m", "mypy", "--strict", "--no-error-summary"]
    config = [
        "--config-file",
        str(ROOT / "pyproject.toml"),
        "--cache-dir",
        str(ROOT / ".mypy_cache"),
    ]
    files = sorted(str(tmp_path / f"{name}.py") for name in modules)
    result = subprocess.run(
        [*command, *config, *files], cwd=ROOT, capture_output=True, text=True, check=False
    )
    for line in result.stdout.splitlines():
        found = re.match(r"^.*?(doc_\w+)\.py:(\d+): (error|note): (.*)$", line)
        if found is None:
            continue
        name, number, level, message = found.groups()
        block = modules[name]
        problems.append(f"{_where(block, block.lines[int(number) - 1])}: {level}: {message}")
    assert not problems, "\n".join(problems)
    assert result.returncode == 0, result.stdout + result.stderr


def _checkable(block: Block) -> str:
    """The block's code; with top-level ``await`` it becomes an async function's body, as the
    asyncio REPL (``python -m asyncio``) would run it."""
    code = "\n".join(block.code) + "\n"
    try:
        compile(code, block.where, "exec")
    except SyntaxError as e:
        if "outside" not in str(e.msg):  # 'await' outside function, 'async with' outside ...
            raise
        body = "".join(f"    {line}\n" if line.strip() else "\n" for line in block.code)
        code = "async def _example() -> None:\n" + body
        compile(code, block.where, "exec")
        block.lines.insert(0, block.start)
    return code


def _where(block: Block, doc_line: int) -> str:
    return f"{block.doc.relative_to(ROOT)}:{doc_line} (the block at line {block.start})"


def test_testing_guide_conversation_passes_against_the_demo(tmp_path: Path) -> None:
    guide = python_blocks(ROOT / "docs" / "testing.md")
    (block,) = [b for b in guide if "async def test_menu(qbot_chat: Chat) -> None:" in b.code]
    (tmp_path / "test_guide.py").write_text("\n".join(block.code) + "\n", encoding="utf-8")
    result = subprocess.run(
        [*PYTEST, "--rootdir", str(tmp_path), "--qbot-target", "bots.demo:bot", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"{block.where}:\n{result.stdout}{result.stderr}"
    assert "1 passed" in result.stdout
