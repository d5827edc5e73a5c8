"""Exceptions that reach the user.

Every error a user can cause (a bad file, a wrong option, a missing optional package)
is raised as a :class:`HdnnpError`.  The command line prints such errors as one line,
``hdnnp: error: <message>``, without a traceback; programming errors keep their
traceback.
"""

from __future__ import annotations

from pathlib import Path


class HdnnpError(Exception):
    """An error caused by user input; shown as one line without a traceback."""


class InputFileError(HdnnpError):
    """A malformed input file.  The message names the file and, where known, the line."""

    def __init__(self, path: str | Path, message: str, line: int | None = None):
        self.path = str(path)
        self.line = line
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class PotentialFileError(HdnnpError):
    """A potential file that cannot be used (truncated, garbled, unknown version)."""

    def __init__(self, path: str | Path, message: str):
        self.path = str(path)
        super().__init__(f"{self.path}: {message}")


class MissingDependencyError(HdnnpError):
    """An optional package needed for the requested feature is not installed."""

    def __init__(self, package: str, feature: str, extra: str | None = None):
        hint = f"pip install 'hdnnp[{extra}]'" if extra else f"pip install {package}"
        super().__init__(f"{feature} needs the optional package '{package}' ({hint})")
