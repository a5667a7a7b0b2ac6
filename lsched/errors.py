"""User-facing error types: library code raises them, only the CLI turns them into exit code 2."""

from __future__ import annotations


class LschedError(ValueError):
    """A problem the user can fix (a bad file, a bad option); the message is one line."""


class ScenarioError(LschedError):
    """A scenario file that cannot be used: "FILE: field.path: problem"."""

    def __init__(self, source: str, field: str, problem: str) -> None:
        self.source = source
        self.field = field
        self.problem = problem
        where = f"{source}: {field}: " if field else f"{source}: "
        super().__init__(where + _one_line(problem))

    def __reduce__(self) -> tuple[type, tuple[str, str, str]]:
        """Survive pickling, so an error raised in a worker process reaches the CLI intact."""
        return type(self), (self.source, self.field, self.problem)


class ResultsError(LschedError):
    """A results folder that cannot be read back (missing or malformed files)."""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())
