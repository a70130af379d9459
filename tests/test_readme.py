"""The README's library example runs as written, in a fresh folder beside the shipped examples."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def readme_block(heading: str) -> str:
    """The first Python code block under the README heading `heading`."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, f"no Python block under {heading}"
    return match.group(1)


def test_the_library_example_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "examples").symlink_to(REPO / "examples")
    monkeypatch.chdir(tmp_path)
    names: dict[str, object] = {"__name__": "readme"}
    exec(compile(readme_block("As a library"), "README.md", "exec"), names)  # noqa: S102  (the README's own example)
    report = names["report"]
    assert report.disputed and report.to_json()["winner"]["role"] == "challenger"  # type: ignore[attr-defined]
    assert sorted(path.name for path in (tmp_path / "runs").iterdir()) == ["a", "a.key", "b", "b.key"]
