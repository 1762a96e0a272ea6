"""The packages' import rules (docs/architecture.md, "Packages and what they may import").

The control plane must not carry the image builder, the node agent or the user's CLI in its
import graph; the builder must not reach into the CLI or the agent; the wire contract both sides
share (`contracts/`) stands on `signing`, `rhai` and the standard library alone. The rules are
read from the source with `ast`, so an import inside a function counts as much as one at the top.
"""

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# package → top-level packages its modules must never import.
FORBIDDEN = {
    "ledger": {"image", "nodeagent", "zoscli"},
    "coordinator": {"image", "nodeagent", "zoscli"},
    "hub": {"image", "nodeagent", "zoscli"},
    "ops": {"image", "nodeagent", "zoscli"},
    "image": {"zoscli", "nodeagent"},
}
CONTRACTS_MAY_IMPORT = {"contracts", "signing", "rhai"}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(path: Path, node: ast.ImportFrom) -> str:
    """The absolute module an `ImportFrom` names, relative imports resolved against `path`."""
    if not node.level:
        return node.module or ""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package.pop()
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported_packages(path: Path) -> set[str]:
    """Top-level packages `path` imports at run time (imports only a type checker sees are not)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skipped = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and _is_type_checking(node)
        for statement in node.body
        for child in ast.walk(statement)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add(_resolve(path, node).split(".")[0])
    return found - {""}


def _sources(package: str) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python files under {package}/"
    return files


def _offending(package: str, allowed) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _sources(package)
        for name in sorted(imported_packages(path))
        if not allowed(name)
    ]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_none_of_its_forbidden_packages(package: str):
    assert _offending(package, lambda name: name not in FORBIDDEN[package]) == []


def test_contracts_stand_on_signing_rhai_and_the_standard_library_alone():
    def allowed(name: str) -> bool:
        return name in CONTRACTS_MAY_IMPORT or name in sys.stdlib_module_names

    assert _offending("contracts", allowed) == []


def test_relative_imports_are_resolved():
    # A relative import must not slip past the rules by naming no package.
    module = ROOT / "ledger" / "boot.py"
    node = ast.parse("from ..image import stamp").body[0]
    assert isinstance(node, ast.ImportFrom)
    assert _resolve(module, node) == "image"
    node = ast.parse("from . import models").body[0]
    assert isinstance(node, ast.ImportFrom)
    assert _resolve(module, node) == "ledger"
