"""Modules init can skip: scikit-learn and SciPy, which sentence-transformers imports at start-up for
sparse similarity (`sentence_transformers.util`) and never runs to embed text: about a quarter of
init. While `deferring()` is open, importing one of them (or a submodule) gives a stand-in module; a
name taken from it is a stand-in too, and the real module loads, and takes its place, the first time
something uses one: calls it, reads an attribute, subclasses it, or imports one of its submodules
afresh. `isinstance(x, stand_in)` is False without loading anything, which is right: no object of a
class can exist before its module has run. No installed file is changed.

SymPy stays: torch's own modules subclass its classes at import, and transformers' model loading
runs `torch.distributed.tensor`, which imports them (`is_dtensor`, `Shard(0)` at import).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import threading
import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Union

DEFERRED = ("sklearn", "scipy")
_lock = threading.RLock()


def _root(fullname: str, roots: Sequence[str]) -> str | None:
    return next((root for root in roots if fullname == root or fullname.startswith(root + ".")), None)


def load(root: str) -> types.ModuleType:
    """The real `root`, replacing its stand-ins in `sys.modules` (they stay usable: their names
    resolve against the real modules)."""
    with _lock:
        module = sys.modules.get(root)
        if module is not None and not isinstance(module, StandIn):
            return module
        for name in [name for name in sys.modules if _root(name, (root,))]:
            if isinstance(sys.modules[name], StandIn):
                del sys.modules[name]
        _finder.released.add(root)
        return importlib.import_module(root)


class StandIn(types.ModuleType):
    """A module not loaded yet. Its public names are `DeferredName`s; dunder names are absent."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return DeferredName(self.__name__, name)


class DeferredName:
    """`module.name`, looked up in the real module on first use."""

    def __init__(self, module: str, name: str) -> None:
        self._module, self._name, self._value = module, name, None

    def resolve(self) -> Any:
        if self._value is None:
            root = _root(self._module, DEFERRED) or self._module
            load(root)
            self._value = getattr(importlib.import_module(self._module), self._name)
        return self._value

    def _loaded(self) -> bool:
        return not isinstance(sys.modules.get(self._module), StandIn | None)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.resolve(), name)

    def __instancecheck__(self, instance: Any) -> bool:
        return self._loaded() and isinstance(instance, self.resolve())

    def __subclasscheck__(self, subclass: type) -> bool:
        return self._loaded() and issubclass(subclass, self.resolve())

    def __mro_entries__(self, bases: tuple[Any, ...]) -> tuple[Any, ...]:
        return (self.resolve(),)

    def __or__(self, other: Any) -> Any:  # `Name | None` in an annotation evaluated at import
        return Union[self, other]  # noqa: UP007 (a `|` here would recurse)

    def __ror__(self, other: Any) -> Any:
        return Union[other, self]  # noqa: UP007

    def __repr__(self) -> str:
        return f"<deferred {self._module}.{self._name}>"


class _StandInLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = StandIn(spec.name)
        module.__path__ = []  # a package: its submodules are stand-ins too, while deferring
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing runs: that is the point."""


class _Finder(importlib.abc.MetaPathFinder):
    """Stand-ins while `deferring`; afterwards, an import of a submodule not yet seen loads the real
    package first (the stand-in parent has no files to import it from)."""

    def __init__(self) -> None:
        self.deferring = 0
        self.released: set[str] = set()

    def find_spec(
        self, fullname: str, path: Any = None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        root = _root(fullname, DEFERRED)
        if root is None or root in self.released:
            return None
        if self.deferring:
            return importlib.machinery.ModuleSpec(fullname, _StandInLoader(), is_package=True)
        if isinstance(sys.modules.get(root), StandIn):
            load(root)
        return None


_finder = _Finder()


@contextmanager
def deferring() -> Iterator[None]:
    """Within: the modules in DEFERRED that are not loaded yet are imported as stand-ins."""
    with _lock:
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)
        _finder.deferring += 1
    try:
        yield
    finally:
        with _lock:
            _finder.deferring -= 1
