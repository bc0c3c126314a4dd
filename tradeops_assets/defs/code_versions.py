"""Code versions derived from what an asset really runs, so they change exactly when it does.

An asset's code version hashes its own function, every project module it
references and, transitively, every project module those import: ``backtest_report``
changes when ``core/market.py`` (where the P&L is accounted) changes, and
``trained_policy`` when ``core/features.py`` or its run config's defaults do. A
hand-kept list of modules drifts from the code; this cannot. Names a function
takes from outside the project (Dagster, polars) do not count: their versions are
recorded as library versions instead.
"""

import ast
import builtins
import hashlib
import importlib.util
import inspect
import sys
import textwrap
from collections.abc import Callable, Iterator
from functools import cache
from types import CodeType, FunctionType

import dagster as dg

PROJECT = ("tradeops_assets", "resources", "bentos")
SourceReader = Callable[[str], str]


def in_project(module: str) -> bool:
    return module.split(".")[0] in PROJECT


@cache
def read_module(name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(name)
    with open(spec.origin, encoding="utf-8") as source:
        return source.read()


def _module_of(base: str, name: str) -> str:
    """``from base import name``: the submodule ``base.name`` if there is one, else ``base``."""
    candidate = f"{base}.{name}"
    if candidate in sys.modules:
        return candidate
    try:
        return candidate if importlib.util.find_spec(candidate) is not None else base
    except ModuleNotFoundError:  # ``base`` is a module, not a package: ``name`` lives in it
        return base


def imports_of(source: str) -> dict[str, str]:
    """Each name a module's source binds by importing, and the project module it comes from."""
    bound: dict[str, str] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if in_project(alias.name):
                    bound[alias.asname or alias.name.split(".")[0]] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and in_project(node.module):
            for alias in node.names:
                bound[alias.asname or alias.name] = _module_of(node.module, alias.name)
    return bound


def _names(code: CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, CodeType):  # lambdas, comprehensions, inner functions
            yield from _names(const)


class _Closure:
    def __init__(self, read: SourceReader) -> None:
        self.read = read
        self.parts: dict[str, str] = {}

    def module(self, name: str) -> None:
        if name in self.parts or not in_project(name):
            return
        source = self.read(name)
        self.parts[name] = source
        for imported in sorted(set(imports_of(source).values())):
            self.module(imported)

    def function(self, fn: FunctionType) -> None:
        key = f"{fn.__module__}:{fn.__qualname__}"
        if key in self.parts:
            return
        source = textwrap.dedent(inspect.getsource(fn))
        self.parts[key] = source
        home = sys.modules[fn.__module__]
        imported = imports_of(self.read(fn.__module__))
        # Names the compiled code loads, and those only written in it (``run: TrainingRun``).
        written = {node.id for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Name)}
        for name in sorted(set(_names(fn.__code__)) | written):
            if name in imported:
                self.module(imported[name])
            elif hasattr(home, name) and not hasattr(builtins, name):
                self.local(fn.__module__, name, getattr(home, name))
        for hint in fn.__annotations__.values():
            module = getattr(hint, "__module__", "")
            if in_project(module):
                self.module(module)

    def local(self, module: str, name: str, value: object) -> None:
        if inspect.isfunction(value) and value.__module__ == module:
            self.function(value)
        elif inspect.isclass(value) and value.__module__ == module:
            self.parts.setdefault(f"{module}:{name}", inspect.getsource(value))
        elif isinstance(value, str | int | float | bool | tuple | frozenset):
            self.parts.setdefault(f"{module}:{name}", repr(value))


def sources_behind(fn: FunctionType, read: SourceReader = read_module) -> dict[str, str]:
    """The function's source and every project module it reaches, by name."""
    closure = _Closure(read)
    closure.function(fn)
    return closure.parts


def version_of(fn: FunctionType, read: SourceReader = read_module) -> str:
    digest = hashlib.sha256()
    for name, source in sorted(sources_behind(fn, read).items()):
        digest.update(name.encode() + b"\0" + source.encode() + b"\0")
    return digest.hexdigest()[:16]


def compute_fn(asset: dg.AssetsDefinition) -> FunctionType:
    return asset.op.compute_fn.decorated_fn  # type: ignore[union-attr]


def versioned(*assets: dg.AssetsDefinition) -> list[dg.AssetsDefinition]:
    """The assets with code versions derived from what their functions run."""
    return [_with_version(asset, version_of(compute_fn(asset))) for asset in assets]


def _with_version(asset: dg.AssetsDefinition, version: str) -> dg.AssetsDefinition:
    return asset.map_asset_specs(lambda spec: spec.replace_attributes(code_version=version))
