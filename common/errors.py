"""The errors a user can cause and fix, each with a message that names the problem.

Everything that reaches a user (a CLI exit, later an HTTP 4xx) derives from `UserError`; any
other exception is a bug and is allowed to surface with its traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from common.schema import Problem


class UserError(Exception):
    """A problem with the input, the configuration or an artifact, not with the code."""


class DataValidationError(UserError):
    """A table broke its schema. Carries every problem found, not only the first."""

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        n = len(self.problems)
        super().__init__(f"{source}: {n} problem{'s' if n > 1 else ''} found\n{lines}")


class InputError(UserError):
    """One record a model cannot take although it fits the request schema (e.g. bytes that are
    no image). `field` and `index` (the record's place in a batch) say where; the API answers
    422 with them."""

    def __init__(self, message: str, *, field: str | None = None, index: int | None = None) -> None:
        super().__init__(message)
        self.message, self.field, self.index = message, field, index

    @property
    def location(self) -> str:
        """`[2].image`: the third record's image; `image` for a single record."""
        where = f"[{self.index}]" if self.index is not None else ""
        return f"{where}.{self.field}" if where and self.field else where or self.field or "body"


class ArtifactError(UserError):
    """An artifact is missing, corrupted (checksum mismatch) or incompatible with this code."""


class TrainingError(UserError):
    """Training cannot go on with this data or configuration (e.g. a single class in the labels)."""
