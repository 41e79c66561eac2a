"""The package structure as a test: every import (module level, function level, TYPE_CHECKING) read with ``ast``.

Packages and who may import whom (one direction; the arrows of the README's layout table)::

    bundle   → (nothing of ours)            numpy, Pillow, pydantic
    client   → (nothing of ours)            httpx, numpy, Pillow
    harness  → (nothing of ours)            psutil; reaches the service only by launching it
    training → bundle
    export   → training, bundle
    reports  → training, bundle             docs/results.md and its figures from training runs
    service  → bundle                       never torch, onnx, training or export
    bench    → export, training, bundle, harness
    stress   → export, training, bundle, harness
    tests    → anything

No circle between packages, and none between the modules of a package (lazy imports count: a circle that only
closes inside a function still ties the modules together).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ALLOWED: dict[str, set[str]] = {
    "bundle": set(),
    "client": set(),
    "harness": set(),
    "training": {"bundle"},
    "export": {"training", "bundle"},
    "reports": {"training", "bundle"},
    "service": {"bundle"},
    "bench": {"export", "training", "bundle", "harness"},
    "stress": {"export", "training", "bundle", "harness"},
    "tests": {"bundle", "client", "harness", "training", "export", "reports", "service", "bench", "stress"},
}
PACKAGES = tuple(ALLOWED)
# Third-party distributions a package may import beyond the standard library (None: not restricted here).
THIRD_PARTY: dict[str, set[str] | None] = {
    "bundle": {"numpy", "PIL", "pydantic"},
    "client": {"httpx", "numpy", "PIL"},
    "harness": {"psutil"},
    "service": {
        "numpy",
        "PIL",
        "pydantic",
        "pydantic_settings",
        "fastapi",
        "starlette",
        "uvicorn",
        "onnxruntime",
        "prometheus_client",
        "multipart",
        "python_multipart",
        "orjson",
    },
}


def modules() -> dict[str, Path]:
    """Dotted module name → file, for every .py file of every package."""
    out: dict[str, Path] = {}
    for pkg in PACKAGES:
        if not (REPO / pkg).is_dir():  # reports/ before its first commit, on a clean clone
            continue
        for path in sorted((REPO / pkg).rglob("*.py")):
            rel = path.relative_to(REPO).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = modules()


def _resolve(name: str) -> str | None:
    """The longest prefix of ``name`` that is one of our modules (``a.b.c`` where only ``a.b`` is a file)."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in MODULES:
            return candidate
    return None


def imports(module: str) -> Iterator[tuple[str, int]]:
    """(imported dotted name, line) for every import statement anywhere in the module."""
    path = MODULES[module]
    is_pkg = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's own package, up (level - 1)
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join([*base, node.module] if node.module else base)
            else:
                prefix = node.module or ""
            for alias in node.names:  # `from pkg import module` imports pkg.module
                full = f"{prefix}.{alias.name}"
                yield (full if full in MODULES else prefix), node.lineno


def edges() -> dict[str, set[str]]:
    """Module → our modules it imports."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module in MODULES:
        for name, _ in imports(module):
            target = _resolve(name)
            if target is not None and target != module:
                graph[module].add(target)
    return graph


GRAPH = edges()


def package(module: str) -> str:
    return module.split(".")[0]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_top_level_package_has_its_rules() -> None:
    """A new top-level package must say here whom it may import (and show up in the README's table)."""
    on_disk = {p.parent.name for p in REPO.glob("*/__init__.py")}
    assert on_disk <= set(PACKAGES), f"packages without import rules: {sorted(on_disk - set(PACKAGES))}"


def test_the_scan_sees_every_package_and_lazy_imports() -> None:
    assert {package(m) for m in MODULES} == {p for p in PACKAGES if (REPO / p).is_dir()}
    # a function-level import (export/__main__.py imports verify_bundle inside main) is an edge too
    assert "export.verify" in GRAPH["export.__main__"]


@pytest.mark.parametrize("pkg", PACKAGES)
def test_imports_go_one_way(pkg: str) -> None:
    wrong = sorted(
        f"{m}:{line} imports {name}"
        for m in MODULES
        if package(m) == pkg
        for name, line in imports(m)
        if (target := _resolve(name)) is not None and package(target) not in ALLOWED[pkg] | {pkg}
    )
    assert not wrong, f"{pkg} may import only {sorted(ALLOWED[pkg]) or 'nothing of ours'}:\n" + "\n".join(wrong)


def test_no_circle_between_packages() -> None:
    between: dict[str, set[str]] = {p: set() for p in PACKAGES}
    for m, targets in GRAPH.items():
        between[package(m)] |= {package(t) for t in targets} - {package(m)}
    assert cycles(between) == []


@pytest.mark.parametrize(
    "pkg",
    PACKAGES,
)
def test_no_circle_between_modules(pkg: str) -> None:
    inside = {m: {t for t in ts if package(t) == pkg} for m, ts in GRAPH.items() if package(m) == pkg}
    # A package's __init__ importing its own submodules is how packages re-export; those edges only run
    # at first import of the package and are not the tangle this test is about.
    for m in inside:
        if MODULES[m].name == "__init__.py":
            inside[m] = set()
    assert cycles(inside) == [], f"import circles in {pkg}"


@pytest.mark.parametrize("pkg", sorted(THIRD_PARTY))
def test_third_party_imports_stay_in_the_role(pkg: str) -> None:
    allowed = THIRD_PARTY[pkg]
    assert allowed is not None
    ours = set(PACKAGES)
    wrong = sorted(
        f"{m}:{line} imports {name}"
        for m in MODULES
        if package(m) == pkg
        for name, line in imports(m)
        if (top := name.split(".")[0])
        and top not in ours
        and top not in sys.stdlib_module_names
        and top != "__future__"
        and top not in allowed
    )
    assert not wrong, f"{pkg} may import only the standard library and {sorted(allowed)}:\n" + "\n".join(wrong)


def test_a_circle_and_a_wrong_direction_are_caught() -> None:
    """The checker itself: a made-up graph with a circle is reported."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
