"""One registry type for every pluggable part: name -> factory, also from package entry points.

A third-party package extends a registry without touching this project by declaring an entry
point in the registry's group, e.g. in its ``pyproject.toml``::

    [project.entry-points."auditdm.renderers"]
    my-renderer = "my_package.rendering:MyRenderer"
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(ValueError):
    pass


class Registry(Generic[T]):
    """Factories by name. ``kind`` names what they make in error messages (``"renderer"``)."""

    def __init__(self, kind: str, entry_point_group: str | None = None):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._factories: dict[str, Callable[..., T]] = {}
        self._entry_points_loaded = entry_point_group is None

    def register(self, name: str, factory: Callable[..., T] | None = None):
        """``registry.register("x", factory)``, or as a decorator: ``@registry.register("x")``."""
        if factory is None:
            return lambda decorated: self.register(name, decorated)
        self._factories[name] = factory
        return factory

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for point in entry_points(group=self.entry_point_group):
            self._factories.setdefault(point.name, point.load())

    def get(self, name: str) -> Callable[..., T]:
        if name not in self._factories:
            self._load_entry_points()
        try:
            return self._factories[name]
        except KeyError:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}") from None

    def build(self, name: str, /, **kwargs: Any) -> T:
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def part(name: str, **arguments: Any) -> dict[str, Any]:
    """How the manifest records one part of a run: its registered name and the arguments it was built with."""
    return {"name": name, "arguments": {key: value for key, value in sorted(arguments.items())}}
