"""Dependencies: a job that runs only once other jobs have finished."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from myrq.exceptions import InvalidJobError
from myrq.ids import validate_job_id

#: Most jobs one job may depend on (each is a key its enqueue touches).
MAX_DEPENDENCIES = 1000


@dataclass(frozen=True)
class Dependency:
    """The jobs a job waits for, as RQ spells it: ``Dependency(jobs=[a, b], allow_failure=True)``.

    ``jobs`` are :class:`~myrq.Job` objects or ids (one, or a list). The job
    runs once they have all finished; if one ends otherwise (failed, timed
    out, canceled, stopped) it is canceled instead, unless ``allow_failure``,
    in which case it runs once they have all ended, however.
    """

    jobs: tuple[str, ...]
    allow_failure: bool = False

    def __init__(self, jobs: object, allow_failure: bool = False) -> None:
        if not isinstance(allow_failure, bool):
            raise InvalidJobError(f"allow_failure must be True or False, not {allow_failure!r}")
        object.__setattr__(self, "jobs", _ids(jobs))
        object.__setattr__(self, "allow_failure", allow_failure)

    @classmethod
    def of(cls, value: object) -> Dependency | None:
        """What a user passed as ``depends_on``: a Job, an id, a list of them, or a Dependency."""
        if value is None or isinstance(value, Dependency):
            return value
        return cls(value)


def _ids(value: object) -> tuple[str, ...]:
    items: Iterable[Any] = (
        [value] if isinstance(value, str) or hasattr(value, "id") else _listed(value)
    )
    ids: list[str] = []
    for item in items:
        job_id = getattr(item, "id", item)
        validate_job_id(job_id)
        if job_id not in ids:
            ids.append(job_id)
    if not ids:
        raise InvalidJobError("depends_on names no job: give a Job, a job id, or a list of them")
    if len(ids) > MAX_DEPENDENCIES:
        raise InvalidJobError(
            f"a job may depend on at most {MAX_DEPENDENCIES} jobs, not {len(ids)}: "
            "make a job that waits for a group and depend on that"
        )
    return tuple(ids)


def _listed(value: object) -> Iterable[Any]:
    if isinstance(value, list | tuple | set | frozenset):
        return value
    raise InvalidJobError(
        f"depends_on must be a Job, a job id, a list of them or myrq.Dependency(...), not {value!r}"
    )
