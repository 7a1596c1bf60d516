"""The import graph of kgen: no cycle, and no module imports one above its level.

The imports are read with `ast` (at module level and inside functions), so
the test imports no kgen module and takes well under a second.
"""

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Lowest first. A module imports only modules of its own level or below; the
# longest name that prefixes a module's gives its level (kgen.data.idx is
# kgen.data's). The CLI's source, cli/, installs as kgen.cli.
LEVELS = [
    ["kgen", "kgen.errors"],  # the package itself holds only __version__
    ["kgen.files"],  # atomic writes, JSON and CSV
    ["kgen.runs"],  # the run directory: its names, config.json, history.csv, the lock
    ["kgen.capabilities"],
    ["kgen.data"],
    ["kgen.backend"],
    ["kgen.devices"],
    ["kgen.specs"],  # each option and model declared once: the models take their defaults and checks from it
    ["kgen.nets", "kgen.augment", "kgen.optimizers", "kgen.inputs"],
    ["kgen.models", "kgen.presets"],  # a preset's folder and its model: kgen.models.from_preset
    ["kgen.plots"],
    ["kgen.callbacks", "kgen.checkpoint", "kgen.figures"],
    ["kgen.evaluation"],
    ["kgen.report", "kgen.presets.export"],  # a preset made from a run, measured by the evaluator
    ["kgen.training", "kgen.demo"],  # the demo page serves runs and presets
    ["kgen.cli", "kgen.__main__"],
]


def _modules():
    """`{module name: file}` of every module of kgen/ and cli/."""
    found = {}
    for folder, package in (("kgen", "kgen"), ("cli", "kgen.cli")):
        for dirpath, _, files in os.walk(os.path.join(ROOT, folder)):
            for name in files:
                if not name.endswith(".py"):
                    continue
                parts = os.path.relpath(os.path.join(dirpath, name), os.path.join(ROOT, folder))[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                found[".".join([package] + parts)] = os.path.join(dirpath, name)
    return found


def _imports(module, path, modules):
    """The kgen modules that `module` imports anywhere in its file (inside functions too)."""
    is_package = path.endswith("__init__.py")
    names = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read(), path)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package that holds `module`
                package = module.split(".")
                package = package[: len(package) - node.level + is_package]
                base = ".".join(package + ([base] if base else []))
            for alias in node.names:  # `from kgen import runs` imports the module kgen.runs
                names.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {n for n in names if n in modules and n != module}


def _level(module):
    prefixes = [(len(p), i) for i, names in enumerate(LEVELS) for p in names if module == p or module.startswith(p + ".")]
    assert prefixes, f"{module} has no level; add it to LEVELS in tests/test_structure.py"
    return max(prefixes)[1]


def _graph():
    modules = _modules()
    return {m: _imports(m, path, modules) for m, path in modules.items()}


def test_every_module_has_a_level():
    graph = _graph()
    for module in graph:
        _level(module)
    # the parser sees imports at module level, inside functions, and `from kgen import x` as kgen.x
    assert {"kgen.files", "kgen.runs", "kgen.models"} <= graph["kgen.checkpoint"]
    assert "kgen.data.load" in graph["kgen.data"] and "kgen.training" in graph["kgen.cli.main"]


def test_no_module_imports_one_above_its_level():
    graph = _graph()
    upward = sorted(
        f"{m} ({LEVELS[_level(m)][0]}) imports {t} ({LEVELS[_level(t)][0]})"
        for m, targets in graph.items() for t in targets if _level(t) > _level(m)
    )
    assert not upward, "\n".join(upward)


def test_no_import_cycle():
    graph = _graph()
    done, path = set(), []

    def visit(module):
        if module in path:
            return path[path.index(module):] + [module]
        if module in done:
            return None
        path.append(module)
        for target in sorted(graph[module]):
            cycle = visit(target)
            if cycle:
                return cycle
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        cycle = visit(module)
        assert cycle is None, "import cycle: " + " -> ".join(cycle)
