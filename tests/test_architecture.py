"""The package's layering, read from its source with `ast` (nothing is imported).

Why: the file list should show the architecture, and a new model should be one entry in
`engine/specs.py`. These checks keep it so: no import cycles between modules, the engine
imports nothing above it but `config`, `errors` and `_state`, `display/` never touches
torch, and at most a handful of comparisons against a model name live outside the specs.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "chatterbox_nb"
ROOT = "chatterbox_nb"
ENGINE_MAY_IMPORT = {f"{ROOT}.config", f"{ROOT}.errors", f"{ROOT}._state"}
MAX_MODEL_NAME_COMPARISONS = 3


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, tuple[Path, ast.Module]]:
    return {_module_name(p): (p, ast.parse(p.read_text(), str(p))) for p in sorted(PKG.rglob("*.py"))}


MODULES = _modules()


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str) -> set[str]:
    """Every module of the package (or outside it) that `module` imports, anywhere in its body,
    including imports done lazily inside functions: a lazy import still points upward."""
    path, tree = MODULES[module]
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
    return found


def _internal_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        targets = set()
        for name in _imports(module):
            # `import chatterbox_nb.engine.x` names the module; a parent package is not an edge
            while name and name not in MODULES and name.startswith(ROOT):
                name = name.rpartition(".")[0]
            # the package itself (the public API, above every layer) is an edge too; a subpackage's
            # __init__ is not, for the modules inside it
            if name in MODULES and name != module and (name == ROOT or not module.startswith(name + ".")):
                targets.add(name)
        graph[module] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    assert _cycles(_internal_graph()) == []


def test_engine_imports_nothing_above_it() -> None:
    upward = {
        module: sorted(t for t in targets if not t.startswith(f"{ROOT}.engine") and t not in ENGINE_MAY_IMPORT)
        for module, targets in _internal_graph().items()
        if module.startswith(f"{ROOT}.engine")
    }
    assert {m: t for m, t in upward.items() if t} == {}


def test_display_never_imports_torch() -> None:
    offenders = {
        module: sorted(n for n in _imports(module) if n.split(".")[0] in ("torch", "torchaudio"))
        for module in MODULES
        if module.startswith(f"{ROOT}.display")
    }
    assert {m: t for m, t in offenders.items() if t} == {}


def _model_names() -> set[str]:
    """The keys of `SPECS`, read from engine/specs.py's source."""
    _, tree = MODULES[f"{ROOT}.engine.specs"]
    for node in ast.walk(tree):
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        if isinstance(target, ast.Name) and target.id == "SPECS" and isinstance(node.value, ast.Dict):
            return {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
    raise AssertionError("engine/specs.py has no literal SPECS dict")


def _is_name(node: ast.AST, names: set[str]) -> bool:
    if isinstance(node, ast.Constant) and node.value in names:
        return True
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_is_name(e, names) for e in node.elts)
    return False


def test_model_names_are_compared_only_in_the_specs() -> None:
    names = _model_names()
    assert names, "SPECS is empty"
    found = []
    for module, (path, tree) in MODULES.items():
        if module == f"{ROOT}.engine.specs":
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Compare):
                continue
            ops_ok = all(isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)) for op in node.ops)
            if ops_ok and any(_is_name(side, names) for side in [node.left, *node.comparators]):
                found.append(f"{path.relative_to(PKG.parent)}:{node.lineno}")
    assert len(found) <= MAX_MODEL_NAME_COMPARISONS, found


def test_say_options_are_listed_once() -> None:
    """`say`'s keywords, the magic's say parser and `options.SAY_OPTIONS` are one list."""
    import inspect

    from chatterbox_nb import api, magics, options

    keywords = [p for p in inspect.signature(api.say).parameters if p != "text"]
    assert sorted(keywords) == sorted(options.SAY_NAMES)
    parsed = vars(magics._build_parsers()["say"].parse_args(["Hi"]))
    assert sorted(parsed) == sorted([*options.SAY_NAMES, "text"])


#: the subcommands of the user-facing contract (/work/shared/INTERFACE.md), written out here
#: rather than read from the parsers the help is made from
CONTRACT_SUBCOMMANDS = ("say", "compare", "load", "unload", "status", "warmup", "voice", "cache", "history", "batch", "ui", "help")


def test_magic_help_is_the_full_help(shell) -> None:
    """What `%chatterbox?` shows (IPython's inspector) has a usage for every subcommand of
    the contract and names every say option as it is typed."""
    import re

    from chatterbox_nb import options

    shown = shell.object_inspect_text("%chatterbox")
    assert sorted(set(re.findall(r"usage: %chatterbox (\w+)", shown))) == sorted(CONTRACT_SUBCOMMANDS)
    for name in options.SAY_NAMES:
        assert f"--{name.replace('_', '-')}" in shown, name
    assert "--prompt-tokens" in shown and "--engine" in shown
