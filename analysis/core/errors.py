"""User-facing errors: each names what was wrong, where, and how to fix it."""

from __future__ import annotations


class PruneScopeError(Exception):
    """An error caused by input the user can fix; the CLI prints it and exits with code 2."""

    def __init__(self, problem: str, fix: str | None = None, where: str | None = None):
        self.problem, self.fix, self.where = problem, fix, where
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = f"{self.where}: {self.problem}" if self.where else self.problem
        return f"{text}. Fix: {self.fix}" if self.fix else text


class ConfigError(PruneScopeError):
    """A configuration value is missing, unknown or out of range."""


class DataError(PruneScopeError):
    """A dataset, file, column or label is missing or malformed."""


class ModelError(PruneScopeError):
    """A model name, folder or checkpoint cannot be loaded safely."""


class StoreError(PruneScopeError):
    """The run store has no such run or cannot hold what was asked."""
