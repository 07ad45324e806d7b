"""The typed API, checked by mypy: a file that must pass, and one whose every marked line fails."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

HERE = Path(__file__).parent / "typing"


def _mypy(path: Path, tmp_path: Path) -> tuple[str, int]:
    out, err, code = mypy_api.run(
        ["--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"), str(path)]
    )
    return out + err, code


@pytest.mark.timeout(300)
def test_the_typed_api_checks_cleanly(tmp_path: Path) -> None:
    out, code = _mypy(HERE / "typed_ok.py", tmp_path)
    assert code == 0, out


@pytest.mark.timeout(300)
def test_each_misuse_is_a_type_error(tmp_path: Path) -> None:
    path = HERE / "typed_bad.py"
    out, code = _mypy(path, tmp_path)
    assert code == 1, out
    expected = {n for n, line in enumerate(path.read_text().splitlines(), 1) if "# E:" in line}
    reported = {int(m) for m in re.findall(rf"{re.escape(path.name)}:(\d+): error", out)}
    assert reported == expected, out
