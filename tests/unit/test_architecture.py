"""The house rules, checked: small modules, layers that point one way, no import cycles.

The layers, bottom to top (ARCHITECTURE.md):

1. ``model_adapters``: everything that knows a model; never imports ``sahs_lens``.
2. the method: ``sahs_lens`` except ``sahs_lens.organism`` and the CLI; talks to models through
   ``model_adapters``' public surface.
3. ``sahs_lens.organism``: the bundled organism (training, evaluation, rendering) and the demo.
4. ``sahs_lens.cli`` / ``sahs_lens.__main__``: the command line, the only code that imports everything.

Every ``import`` statement counts, including those inside functions and under ``TYPE_CHECKING``: a lazy
import is still a dependency. Importing a package's submodule is not counted as importing the package's
``__init__`` (Python runs it first, but it only re-exports).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("model_adapters", "sahs_lens")
MAX_LINES = 500


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "checkpoint" not in path.parts
    }


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The deepest module of ours that ``name`` (a dotted import target) refers to, or None."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def _imports(module: str, path: Path) -> set[str]:
    """Every module of ours that ``module`` imports, anywhere in its body."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            # ``from pkg import name``: the submodule pkg.name when it is one, else pkg itself
            subs = [t for t in targets[:-1] if t in MODULES]
            targets = subs if len(subs) == len(node.names) else [*subs, base]
        for target in targets:
            resolved = _resolve(target)
            if resolved is not None and resolved != module:
                found.add(resolved)
    return found


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def _layer(module: str) -> int:
    if module.startswith("model_adapters"):
        return 1
    if module in ("sahs_lens.cli", "sahs_lens.__main__") or module.startswith("sahs_lens.cli."):
        return 4
    if module == "sahs_lens.organism" or module.startswith("sahs_lens.organism."):
        return 3
    return 2


def test_the_graph_sees_the_packages() -> None:
    # a guard against a checker that silently reads nothing
    assert "sahs_lens.activations" in MODULES and "model_adapters.base" in MODULES
    assert "model_adapters" in GRAPH["sahs_lens.activations"]  # from model_adapters import HookedVLM
    assert "sahs_lens.decision" in GRAPH["sahs_lens.activations"]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_is_small(module: str) -> None:
    n_lines = len(MODULES[module].read_text(encoding="utf-8").splitlines())
    assert n_lines <= MAX_LINES, (
        f"{MODULES[module].relative_to(ROOT)} has {n_lines} lines (at most {MAX_LINES}): split it by job"
    )


def test_layers_point_one_way() -> None:
    upward = sorted(
        f"{module} (layer {_layer(module)}) imports {dep} (layer {_layer(dep)})"
        for module, deps in GRAPH.items()
        for dep in deps
        if _layer(dep) > _layer(module)
    )
    assert not upward, "imports that point up a layer:\n" + "\n".join(upward)


def test_model_adapters_never_imports_sahs_lens() -> None:
    # stricter than the layer rule: not even sahs_lens' package root (e.g. for its version)
    for module, path in MODULES.items():
        if not module.startswith("model_adapters"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            assert not any(n == "sahs_lens" or n.startswith("sahs_lens.") for n in names), (
                f"{path.relative_to(ROOT)}:{node.lineno} imports sahs_lens; model_adapters must not"
            )


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for dep in sorted(graph.get(node, ())):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_no_import_cycles() -> None:
    cycles = _cycles(GRAPH)
    assert not cycles, "import cycles (lazy imports count):\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_cli_parses_without_loading_the_stack() -> None:
    # `sahs-lens --help` must answer at once: parsing imports neither torch nor transformers
    code = (
        "import sys\n"
        "from sahs_lens.cli import build_parser\n"
        "build_parser().format_help()\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'transformer_lens', 'numpy') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"building the CLI parser imported {out.stdout.strip()}"
    version = subprocess.run(
        [sys.executable, "-m", "sahs_lens", "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.strip().startswith("sahs-lens ")


def test_every_public_name_is_exported_lazily_and_statically() -> None:
    import sahs_lens

    tree = ast.parse(MODULES["sahs_lens"].read_text(encoding="utf-8"))
    static = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sahs_lens.")
        for alias in node.names
    }
    lazy = set(sahs_lens._EXPORTS)
    assert lazy == static - {"__version__"}, "the TYPE_CHECKING imports and _EXPORTS disagree"
    assert set(sahs_lens.__all__) == lazy | {"__version__"}
    for name in sahs_lens.__all__:
        assert getattr(sahs_lens, name) is not None
