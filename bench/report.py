"""Benchmark figures into a markdown document: each script owns the section between its two markers, so several
scripts write into one document (docs/quality.md, docs/benchmarks.md) without touching each other's figures."""

from __future__ import annotations

from pathlib import Path


def markers(owner: str) -> tuple[str, str]:
    return f"<!-- {owner} begin -->", f"<!-- {owner} end -->"


def replace_section(path: Path, owner: str, body: str, *, title: str = "# Quality") -> None:
    """Puts `body` between `owner`'s markers in `path` (appended the first time), keeping everything else."""
    begin, end = markers(owner)
    section = f"{begin}\n{body.strip()}\n{end}"
    text = path.read_text() if path.exists() else f"{title}\n"  # read right before writing: others write there too
    if begin in text and end in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
