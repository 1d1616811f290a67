"""The package reads as the pipeline: each stage a subpackage, none importing a later one."""

import ast
from pathlib import Path

import pytest

from rci.serving.repository import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "rci"
# Pipeline order; `errors` is shared by every stage, `bench` drives them all, `train` learns
# from the benchmark what `match` serves.
STAGES = ["errors", "preprocess", "describe", "library", "match", "serving", "bench", "train"]


def stage_of(module: str) -> str | None:
    """The stage an `rci.` module belongs to (rci.match.recall -> "match")."""
    parts = module.split(".")
    return parts[1] if parts[0] == "rci" and len(parts) > 1 else None


def rci_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of an rci module in `path`, nested ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("rci.")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "rci":
                found += [(node.lineno, f"rci.{a.name}") for a in node.names]
            elif node.module.startswith("rci."):
                found.append((node.lineno, node.module))
    return found


def test_top_level_is_the_stages():
    entries = {p.stem for p in PACKAGE.iterdir() if p.name != "__pycache__"}
    assert entries - {"__init__"} == set(STAGES)
    for stage in STAGES:
        if (PACKAGE / stage).is_dir():
            doc = ast.get_docstring(ast.parse((PACKAGE / stage / "__init__.py").read_text()))
            assert doc and "->" in doc, f"rci/{stage}/__init__.py must say what goes in and out"


@pytest.mark.parametrize("stage", STAGES)
def test_no_stage_imports_a_later_one(stage):
    here = STAGES.index(stage)
    files = [PACKAGE / f"{stage}.py"] if (PACKAGE / f"{stage}.py").exists() else []
    files += sorted((PACKAGE / stage).rglob("*.py")) if (PACKAGE / stage).is_dir() else []
    assert files
    backward = [
        f"{path.relative_to(PROJECT_ROOT)}:{line} imports {module}"
        for path in files
        for line, module in rci_imports(path)
        if STAGES.index(stage_of(module)) > here
    ]
    assert backward == []


def test_the_checker_sees_a_backward_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from rci.match.recall import recall\n")
    assert rci_imports(module) == [(2, "rci.match.recall")]
    assert STAGES.index(stage_of("rci.match.recall")) > STAGES.index("library")


def test_every_package_folder_is_installed_and_the_client_has_a_name_of_its_own():
    import importlib.util

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    setuptools = project["tool"]["setuptools"]
    folders = {
        ".".join(p.parent.relative_to(PROJECT_ROOT).parts)
        for p in PACKAGE.rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    # A folder left out would be missing from a wheel, though an editable install hides it.
    assert set(setuptools["packages"]) == folders | {"rci_client"}
    assert setuptools["package-dir"] == {"rci_client": "client"}
    assert project["project"]["scripts"]["rci"] == "rci_client.cli:main"
    spec = importlib.util.find_spec("rci_client")
    assert spec is not None and Path(spec.origin).parent == PROJECT_ROOT / "client"
