"""The examples of the feature pages in docs/ run, and check what they claim.

Each page's ```python blocks are joined, in order, into one program, run in a
fresh interpreter (memory broker, worker in the same process). A page whose
text drifts from the code fails here, with its name and its output.

Blocks that must not run use other fences: ```sh, ```text, and ```py for an
excerpt of a module. An excerpt whose first line is ``# examples/doc_tasks.py``
must be found, as written, in that file.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    "docs/retries.md",
    "docs/scheduled-jobs.md",
    "docs/periodic-jobs.md",
    "docs/results.md",
    "docs/enqueue-options.md",
    "docs/dependencies.md",
    "docs/groups.md",
    "docs/callbacks-and-hooks.md",
    "docs/registries-and-control.md",
    "docs/meta-and-progress.md",
    "docs/metrics-and-tracing.md",
    "docs/eager-mode.md",
    "docs/transactions.md",
    "docs/sentry.md",
    "docs/migrating-from-rq.md",
    "docs/concurrency.md",
    "docs/tasks-and-typing.md",
    "docs/scaling.md",
]
_PYTHON = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_EXCERPT = re.compile(r"^```py[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_SOURCE = "# examples/doc_tasks.py\n"


def python_blocks(text: str) -> list[str]:
    """The ```python blocks of a Markdown text, in order (other fences are left out)."""
    return _PYTHON.findall(text)


def excerpts(text: str) -> list[str]:
    """The ```py blocks that quote examples/doc_tasks.py, without their first line."""
    return [b.removeprefix(_SOURCE) for b in _EXCERPT.findall(text) if b.startswith(_SOURCE)]


def _text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        return output.decode("utf-8", "replace")
    return output or ""


def test_blocks_are_found_in_order() -> None:
    text = (
        "a\n```python\nx = 1\n```\n```sh\nls\n```\n```py\n# examples/doc_tasks.py\ny = 2\n```\n"
        "```python\nassert x == 1\n```\n"
    )
    assert python_blocks(text) == ["x = 1\n", "assert x == 1\n"]
    assert excerpts(text) == ["y = 2\n"]


@pytest.mark.parametrize("page", PAGES)
def test_excerpts_match_the_module(page: str) -> None:
    source = (ROOT / "examples" / "doc_tasks.py").read_text(encoding="utf-8")
    for excerpt in excerpts((ROOT / page).read_text(encoding="utf-8")):
        assert excerpt in source, f"{page} quotes examples/doc_tasks.py wrongly:\n{excerpt}"


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_the_examples_of_a_page_run(page: str) -> None:
    blocks = python_blocks((ROOT / page).read_text(encoding="utf-8"))
    assert blocks, f"{page} has no ```python example"
    code = "\n".join(blocks)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MYRQ_ALLOW": "examples"}
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"{page}: its examples did not end within 60 s\n"
            f"--- stdout\n{_text(exc.stdout)}\n--- stderr\n{_text(exc.stderr)}"
        )
    if done.returncode != 0:
        pytest.fail(
            f"{page}: its examples exited with {done.returncode}\n"
            f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )
