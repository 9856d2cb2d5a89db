"""One small registry class for every extension point (methods, probes, studies, datasets, commands)."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Generic, Iterator, TypeVar

from analysis.core.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> object map filled by a `@registry.register("name")` decorator."""

    def __init__(self, kind: str, packages: tuple[str, ...] = ()):
        """`packages`: where members live; their modules are imported the first time a name is missing, so a
        registry finds its own members (a process imports the experiment kinds, not the CLI or the exporter)."""
        self.kind = kind
        self._items: dict[str, T] = {}
        self._packages, self._discovered = packages, not packages

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        for package in self._packages:
            module = importlib.import_module(package)
            for info in pkgutil.iter_modules(module.__path__, package + "."):
                importlib.import_module(info.name)

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        if name not in self._items:
            self._discover()
        if name not in self._items:
            known = ", ".join(sorted(self._items)) or "none"
            raise ConfigError(f"unknown {self.kind} {name!r}", fix=f"use one of: {known}")
        return self._items[name]

    def names(self) -> list[str]:
        self._discover()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        if name not in self._items:
            self._discover()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
