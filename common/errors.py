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


class ArtifactError(UserError):
    """An artifact is missing, corrupted (checksum mismatch) or incompatible with this code."""


class TrainingError(UserError):
    """Training cannot go on with this data or configuration (e.g. a single class in the labels)."""
