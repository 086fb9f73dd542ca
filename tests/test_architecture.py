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


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node but those under `if TYPE_CHECKING:`: a type-only import is no edge at run
    time (it lets `_state` name the classes it holds without importing them)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            skipped.update(id(n) for child in node.body for n in ast.walk(child))
    return [n for n in ast.walk(tree) if id(n) not in skipped]


def _imports(module: str) -> set[str]:
    """Every module of the package (or outside it) that `module` imports, anywhere in its body,
    including imports done lazily inside functions: a lazy import still points upward."""
    path, tree = MODULES[module]
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in _runtime_nodes(tree):
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


#: the engine's rooms, lowest first: each imports only the rooms below it (and itself)
ENGINE_ROOMS = ("bottom", "seams", "store", "models", "generation", "voices")
ENGINE_BOTTOM = {f"{ROOT}.engine.specs", f"{ROOT}.engine.request"}


def _room(module: str) -> str | None:
    """The engine room a module lives in (None outside the engine)."""
    if module in ENGINE_BOTTOM or module == f"{ROOT}.engine":
        return "bottom"
    parts = module.split(".")
    if parts[:2] != [ROOT, "engine"] or len(parts) < 3:
        return None
    return parts[2]


def test_engine_is_split_into_rooms() -> None:
    """Every engine module lives in a named room: a flat folder of two dozen files hides
    which ones hold files on disk and which ones generate."""
    stray = sorted(m for m in MODULES if m.startswith(f"{ROOT}.engine") and _room(m) not in ENGINE_ROOMS)
    assert stray == []


def test_engine_rooms_import_only_rooms_below() -> None:
    """The store never imports generation; models never import voices; the seams import
    nothing of ours but the specs."""
    rank = {room: i for i, room in enumerate(ENGINE_ROOMS)}
    upward = {}
    for module, targets in _internal_graph().items():
        room = _room(module)
        if room is None:
            continue
        above = sorted(t for t in targets if _room(t) is not None and rank[_room(t)] > rank[room])
        if above:
            upward[module] = above
    assert upward == {}


#: what display/ may not import: it holds views fed with data; controllers/ wire them to these
DISPLAY_MAY_NOT_IMPORT = ("api", "voices_api", "voice_registry", "batching", "loading", "_state", "controllers")


def test_display_holds_views_only() -> None:
    """A view that reaches for the API (to say, to read the history, to list voices) is a
    controller in the wrong room: it moves to controllers/."""
    banned = tuple(f"{ROOT}.{name}" for name in DISPLAY_MAY_NOT_IMPORT)
    offenders = {
        module: sorted(t for t in targets if t in banned or t.startswith(tuple(b + "." for b in banned)))
        for module, targets in _internal_graph().items()
        if module.startswith(f"{ROOT}.display")
    }
    assert {m: t for m, t in offenders.items() if t} == {}


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


# -- each say option declared once, for every front end (issue 22, item 2) -------------------
# `options.SAY_OPTIONS` declares each option (type, range, step, default, help, panel place);
# say, batch, the magic's parsers, the `ui` panel and the help are made from it. Before, the
# panel kept its own slider table with other ranges and `batch` spelled say's keywords again.

#: where option names may be spelled: the declaration itself, and the engine below it (it takes
#: checked values and knows upstream's keywords; `test_the_engine_agrees_with_the_declaration`)
OPTION_TABLES_MAY_LIVE_IN = (f"{ROOT}.options", f"{ROOT}.engine")


def _declared() -> tuple:
    from chatterbox_nb import options

    return options.SAY_OPTIONS


def _option_tables(names: set[str]) -> list[str]:
    """Functions spelling three or more say options as parameters, and literals pairing three
    or more option names with numbers (a table of ranges), outside the declaration."""
    found = []
    for module, (path, tree) in MODULES.items():
        if module.startswith(OPTION_TABLES_MAY_LIVE_IN):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                spelt = {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs} & names
            elif isinstance(node, (ast.Tuple, ast.List, ast.Set, ast.Dict)):
                constants = [n.value for n in ast.walk(node) if isinstance(n, ast.Constant)]
                numbers = any(isinstance(c, (int, float)) and not isinstance(c, bool) for c in constants)
                spelt = {c for c in constants if isinstance(c, str)} & names if numbers else set()
            else:
                continue
            if len(spelt) >= 3:
                found.append(f"{path.relative_to(PKG.parent)}:{node.lineno} {sorted(spelt)}")
    return found


def test_no_other_module_holds_a_table_of_say_options() -> None:
    """A new option added to the declaration reaches every front end only if none of them
    lists the options again (say's and batch's signatures did, and the panel's sliders)."""
    from chatterbox_nb import options

    names = {o.name for o in _declared()} - {o.name for o in options.MODEL_OPTIONS}  # load takes those too
    assert _option_tables(names) == []


def test_every_declared_option_reaches_say_batch_the_magic_and_the_help() -> None:
    import inspect

    from chatterbox_nb import api, magics, options
    from chatterbox_nb.batching.run import batch

    parsers = magics._build_parsers()
    say_keywords = set(inspect.signature(api.say).parameters) - {"text"}
    batch_keywords = set(inspect.signature(batch).parameters)
    for o in _declared():
        assert o.name in say_keywords, o.name
        assert (o.name in batch_keywords) == o.batch or o.name == "seed", o.name  # batch has a seed of its own
        for command in ("say", "ui", "batch"):
            if command == "batch" and not o.batch:
                continue
            action = parsers[command]._option_string_actions[o.flags[-1]]
            assert action.dest == o.name, (command, o.name)
            if not (o.switch or o.negatable):
                assert action.help == o.help_text, (command, o.name)  # the range and default, as declared
    assert parsers["batch"]._option_string_actions["--out"].dest == "out"  # batch's --out is its folder


def test_the_engine_agrees_with_the_declaration() -> None:
    """The engine names the sampling options it hands upstream; they are the declared ones,
    and every model has a default for each (the panel's sliders start there)."""
    from chatterbox_nb.engine import specs

    upstream = [o for o in _declared() if o.upstream is not None]
    assert specs.SAMPLING_OPTIONS == tuple(o.name for o in upstream)
    for spec in specs.SPECS.values():
        for o in upstream:
            default = o.default_for(spec.name)
            assert o.check(default) == default, (spec.name, o.name)  # within the declared range


NEW_OPTION = ('    Option("top_k", ("--top-k",), "keep the k likeliest tokens", type=int, metavar="N", low=0, high=1000,\n'
              '           default=0, panel="advanced"),\n')


def test_a_new_option_in_the_declaration_reaches_every_front_end(tmp_path) -> None:
    """One line added to the declaration (a copy of the package): say, batch, the magic, the
    help and the panel take it, with its range, and no other file changes."""
    import os
    import shutil
    import subprocess
    import sys

    copy = tmp_path / ROOT
    shutil.copytree(PKG, copy, ignore=shutil.ignore_patterns("__pycache__"))
    source = (copy / "options.py").read_text()
    anchor = "VOICE_AND_SAMPLING = (\n"
    assert anchor in source
    (copy / "options.py").write_text(source.replace(anchor, anchor + NEW_OPTION))
    script = """
import inspect
import chatterbox_nb as cnb
from chatterbox_nb import magics, options
from chatterbox_nb.errors import InvalidOption
assert cnb.__file__.startswith(%r), cnb.__file__
assert "top_k" in inspect.signature(cnb.say).parameters
assert "top_k" in inspect.signature(cnb.batch).parameters
parsers = magics._build_parsers()
for command, line in (("say", ["hi", "--top-k", "5"]), ("ui", ["--top-k", "5"]), ("batch", ["x.txt", "-o", "d", "--top-k", "5"])):
    assert parsers[command].parse_args(line).top_k == 5, command
assert parsers["say"]._option_string_actions["--top-k"].help.endswith("(0 to 1000; default: 0)")
assert "--top-k N" in magics.full_help()
for call in (lambda: cnb.say("hi", top_k=5000), lambda: cnb.batch(["hi"], "never", top_k=-1), lambda: cnb.ui(top_k=1001)):
    try:
        call()
    except InvalidOption as exc:
        assert "--top-k must be between 0 and 1000" in str(exc), exc
    else:
        raise AssertionError("top_k out of its range was taken")
panel = cnb.ui(top_k=7)
box = panel.view.inputs["top_k"]
assert (box.min, box.max, box.value) == (0, 1000, 7)
assert panel.kwargs()["top_k"] == 7
print("reached")
""" % str(copy)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert done.returncode == 0 and "reached" in done.stdout, done.stderr[-3000:]
    assert not (tmp_path / "never").exists()  # the batch was refused before it made its folder


# ---- names spelled once ---------------------------------------------------------------


def test_the_built_in_voice_and_the_weights_values_are_spelled_once() -> None:
    """A second spelling drifts: the voice named `built-in` (a say's default voice, shown in
    the panel, the history, the timings and batch's manifest) and the values `--weights`
    takes (the help, the settings, the parser, the check) live in one module each."""
    spellings: dict[str, set[str]] = {"built-in": set(), "dummy:reduced": set()}
    for module, (_path, tree) in MODULES.items():
        docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                for word in spellings:
                    if node.value == word or (word == "dummy:reduced" and word in node.value and "hub" in node.value):
                        spellings[word].add(module)
    assert spellings == {"built-in": {f"{ROOT}.engine.specs"}, "dummy:reduced": {f"{ROOT}.engine.store.weights"}}
# -- monkeypatching of chatterbox-tts happens only in engine/seams/ (issue #22) ---------------------

SEAM_ROOM = f"{ROOT}.engine.seams"
#: what looks like a patch outside the seam room but is allowed, by (module, the code), with why
NOT_UPSTREAM_PATCHES = {
    (f"{ROOT}._state", "setattr(sys, _ANCHOR, state)"):
        "our own kernel state, anchored on `sys` so %reload_ext keeps it; nothing of chatterbox-tts",
}


def _upstream_names() -> set[str]:
    """Names a patch of chatterbox-tts would assign to: every function and method it defines,
    every module it imports at the top of a module (T3's `torch`, `tqdm`) and every builtin it
    calls (`print`), read from its source (nothing is imported)."""
    import builtins
    import importlib.util

    found: set[str] = set()
    for path in Path(importlib.util.find_spec("chatterbox").submodule_search_locations[0]).rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.add(node.name)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and hasattr(builtins, node.func.id):
                found.add(node.func.id)
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.update((a.asname or a.name).split(".")[0] for a in node.names)
    return found


def _upstream_modules(tree: ast.Module) -> set[str]:
    """Local names bound to a chatterbox-tts module or object (`import chatterbox.models.t3.t3 as
    t3_module`, `from chatterbox.models.s3gen import decoder`)."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bound.update(a.asname for a in node.names if a.asname and a.name.split(".")[0] == "chatterbox")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "chatterbox":
            bound.update(a.asname or a.name for a in node.names)
    return bound


def _patches(tree: ast.Module, upstream: set[str]) -> set[str]:
    """What in `tree` assigns to someone else's attributes the way a monkeypatch does:
    `setattr`/`delattr`, writing through `vars(...)`, or assigning an upstream name
    (`x.forward = `, `module.torch = `) or anything on a chatterbox-tts module. Our own
    objects' attributes, set through `self`/`cls`, are not patches."""
    bound = _upstream_modules(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in ("setattr", "delattr"):
                found.add(ast.unparse(node))
            elif (isinstance(func, ast.Attribute) and func.attr in ("pop", "update", "setdefault", "clear", "__setitem__")
                  and isinstance(func.value, ast.Call) and ast.unparse(func.value.func) == "vars"):
                found.add(ast.unparse(node))
        targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else (
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else [])
        for target in targets:
            for sub in ast.walk(target):
                if (isinstance(sub, ast.Subscript) and isinstance(sub.value, ast.Call)
                        and ast.unparse(sub.value.func) == "vars"):
                    found.add(ast.unparse(sub))
                if not isinstance(sub, ast.Attribute) or not isinstance(sub.ctx, (ast.Store, ast.Del)):
                    continue
                root = sub.value
                while isinstance(root, ast.Attribute):
                    root = root.value
                if isinstance(root, ast.Name) and root.id in ("self", "cls"):
                    continue
                if sub.attr in upstream or (isinstance(root, ast.Name) and root.id in bound):
                    found.add(ast.unparse(sub))
    return found


def test_only_the_seam_room_patches_upstream() -> None:
    """Every change to chatterbox-tts's objects goes through engine/seams/, which restores
    what was there and has a contract test per seam (tests/test_seams.py); a patch anywhere
    else escapes both."""
    upstream = _upstream_names()
    assert {"forward", "inference", "torch", "tqdm", "print"} <= upstream, "chatterbox-tts's source was not read"
    outside = {
        (module, patch)
        for module, (_, tree) in MODULES.items()
        if module != SEAM_ROOM and not module.startswith(SEAM_ROOM + ".")
        for patch in _patches(tree, upstream)
    }
    assert sorted(outside - set(NOT_UPSTREAM_PATCHES)) == []
    assert sorted(set(NOT_UPSTREAM_PATCHES) - outside) == [], "an allowed exception is gone: drop it from the list"
