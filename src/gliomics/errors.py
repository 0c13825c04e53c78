"""User-facing errors.

Anything a user can cause (a missing file, a malformed table, a bad option)
raises :class:`GliomicsError` with a message that names the file or row and
the problem. The CLI prints such messages on one line each and exits non-zero,
instead of a traceback from deep inside a library.
"""

from __future__ import annotations


class GliomicsError(Exception):
    """An error caused by the user's input, reported without a traceback."""


class ValidationFailed(GliomicsError):
    """Input data broke one or more expectations.

    ``problems`` holds one human-readable line per problem, each naming the
    file or row concerned.
    """

    def __init__(self, problems: list[str], summary: str):
        super().__init__(summary)
        self.problems = list(problems)
        self.summary = summary
