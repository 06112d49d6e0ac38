"""Data flows one way through the groups of ``sips/`` (docs/development.md, "Layout").

Every import statement of every module, those inside functions too, is read with ``ast``: a module
imports only modules of its own group or of a lower layer. Groups that share a layer are siblings
and do not import each other (training and evaluation know nothing of one another).
"""

import ast
import importlib
from pathlib import Path

import sips

from conftest import ROOT

# Lowest first.
LAYERS = (
    ("shared",),  # errors, defaults, checks, arrays, _atomic, _lazy, _version
    ("prediction", "pretrained"),  # predictors and their registry; weights and the Hub
    ("method",),  # spectral, interpolant, sampler, nets, prior, scaling, chunks, refine
    ("io",),  # audio files
    ("training", "evaluation"),
    ("api",),  # sips/__init__.py, the public names
    ("cli",),  # the sips command
)
LAYER = {group: index for index, groups in enumerate(LAYERS) for group in groups}
# The modules at the top of sips/; a module in a subpackage belongs to the group named by it.
TOP = {
    "sips": "api",
    "sips.__main__": "cli",
    "sips.cli": "cli",
    "sips._atomic": "shared",
    "sips._lazy": "shared",
    "sips._version": "shared",
    "sips.arrays": "shared",
    "sips.checks": "shared",
    "sips.defaults": "shared",
    "sips.errors": "shared",
}


def modules(root: Path) -> dict[str, tuple[Path, bool]]:
    """Every module under ``root/sips``: dotted name -> (file, whether it is a package)."""
    found = {}
    for path in sorted((root / "sips").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def group_of(module: str) -> str | None:
    """The group of a module of sips, ``None`` for one that belongs to no group."""
    if module in TOP:
        return TOP[module]
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYER else None


def imports(path: Path, module: str, is_package: bool, known: set[str]) -> list[tuple[int, str]]:
    """``(line, module)`` for every module of sips that ``path`` imports: ``from X import name``
    counts as the submodule ``X.name`` where there is one, else as ``X``."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((node.lineno, sub if sub in known else base))
    return [(line, name) for line, name in found if name == "sips" or name.startswith("sips.")]


def violations(root: Path) -> list[str]:
    """Each import of a higher group, of a sibling group or of a module outside any group, in one line."""
    tree = modules(root)
    found = []
    for module, (path, is_package) in tree.items():
        source = group_of(module)
        if source is None:
            found.append(f"{module} belongs to no group (tests/test_layers.py, TOP or LAYERS)")
            continue
        for line, target in imports(path, module, is_package, set(tree)):
            goal = group_of(target)
            if goal == source:
                continue
            if goal is None or LAYER[goal] >= LAYER[source]:
                where = path.relative_to(root).as_posix()
                found.append(f"{where}:{line}: {module} ({source}) imports {target} ({goal})")
    return found


def test_no_module_imports_a_higher_group():
    assert violations(ROOT) == []


def test_every_group_is_a_subpackage_and_every_subpackage_a_group():
    subpackages = {p.parent.name for p in (ROOT / "sips").glob("*/__init__.py")}
    assert subpackages == set(LAYER) - {"shared", "api", "cli"}
    assert set(sips._GROUPS) == subpackages


def test_every_module_keeps_its_name_under_sips():
    """``sips.<module>`` is the module wherever its group put it (``sips.files``, ``sips.metrics``);
    ``refine``, ``quality`` and ``train`` are the functions of those names, as before the groups.
    ``sips.<group>.<module>`` reaches it too, without an import statement."""
    for module in modules(ROOT):
        parts = module.split(".")
        if len(parts) != 3 or parts[2] == "__main__":
            continue
        moved = importlib.import_module(module)
        group = importlib.import_module(f"sips.{parts[1]}")
        assert group.__getattr__(parts[2]) is moved and parts[2] in dir(group)  # what a fresh `import sips` finds
        if parts[2] in {"refine", "quality", "train"}:
            assert getattr(sips, parts[2]) is getattr(moved, parts[2])
        else:
            assert sips.__getattr__(parts[2]) is moved, module
        assert parts[2] in dir(sips)


def test_an_import_against_the_flow_is_reported(tmp_path):
    """The check fails where it should: a synthetic package with one allowed import and four
    against the flow (a higher group at module level, one inside a function, a sibling, the facade)."""
    files = {
        "sips/__init__.py": "",
        "sips/errors.py": "",
        "sips/cli.py": "",
        "sips/io/__init__.py": "",
        "sips/io/audio.py": "",
        "sips/evaluation/__init__.py": "",
        "sips/evaluation/metrics.py": "",
        "sips/training/__init__.py": "",
        "sips/method/__init__.py": "",
        "sips/method/spectral.py": "from ..errors import SipsError\nfrom ..io import audio\n",
        "sips/method/sampler.py": "def f():\n    from ..cli import main\n",
        "sips/training/corpus.py": "import sips.evaluation.metrics\n",
        "sips/method/refine.py": "from .. import load_prior\n",
        "sips/stray.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert violations(tmp_path) == [
        "sips/method/refine.py:1: sips.method.refine (method) imports sips (api)",
        "sips/method/sampler.py:2: sips.method.sampler (method) imports sips.cli (cli)",
        "sips/method/spectral.py:2: sips.method.spectral (method) imports sips.io.audio (io)",
        "sips.stray belongs to no group (tests/test_layers.py, TOP or LAYERS)",
        "sips/training/corpus.py:1: sips.training.corpus (training) imports sips.evaluation.metrics (evaluation)",
    ]
