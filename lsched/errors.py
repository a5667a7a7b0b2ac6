"""User-facing error types: library code raises them, only the CLI turns them into exit code 2."""

from __future__ import annotations


class LschedError(ValueError):
    """A problem the user can fix (a bad file, a bad option); the message is one line."""


class InputError(LschedError):
    """A file that cannot be used (scenario, sweep, template file): "FILE: field.path: problem".

    The one error type of every document lsched reads; its parts stay available to callers
    that re-attribute it (an override, a swept value).
    """

    def __init__(self, source: str, field: str, problem: str) -> None:
        self.source = str(source)
        self.field = field
        self.problem = _one_line(problem)
        where = f"{source}: {field}: " if field else f"{source}: "
        super().__init__(where + self.problem)

    def __reduce__(self) -> tuple[type, tuple[str, str, str]]:
        """Survive pickling, so an error raised in a worker process reaches the CLI intact."""
        return type(self), (self.source, self.field, self.problem)


class ScenarioError(InputError):
    """A scenario file that cannot be used."""


class ResultsError(LschedError):
    """A results folder that cannot be read back (missing or malformed files)."""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())
