"""What genbook offers a reader (each public module's ``__all__``) and what stays private.

A public module lists the names a reader is meant to use in ``__all__``; no genbook module
imports another module's underscore names: helpers shared between modules live in the private
modules meant for them (``_checks``, ``_random``, ``_device``) under public names.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "genbook"
PUBLIC = sorted(p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("_"))
ALL_MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("name", PUBLIC)
def test_public_modules_declare_all(name):
    module = importlib.import_module(f"genbook.{name}")
    names = module.__all__
    assert len(names) == len(set(names)), f"genbook.{name}.__all__ repeats a name"
    for n in names:
        assert hasattr(module, n), f"genbook.{name}.__all__ lists {n!r}, which it does not define"
        assert not n.startswith("_"), f"genbook.{name}.__all__ lists the private name {n!r}"


@pytest.mark.parametrize("name", PUBLIC)
def test_all_lists_every_public_class_and_function_defined_there(name):
    tree = ast.parse((PACKAGE / f"{name}.py").read_text())
    defined = {
        n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith("_")
    }
    module = importlib.import_module(f"genbook.{name}")
    assert defined <= set(module.__all__), f"genbook.{name}.__all__ misses {sorted(defined - set(module.__all__))}"


@pytest.mark.parametrize("name", ALL_MODULES)
def test_no_module_imports_another_modules_private_names(name):
    tree = ast.parse((PACKAGE / f"{name}.py").read_text())
    modules = set()  # local names of the genbook modules imported whole (`from . import data`)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            if node.module is None:  # `from . import _random`: a private module meant for sharing
                modules |= {a.asname or a.name for a in node.names}
                continue
            private = [a.name for a in node.names if a.name.startswith("_")]
            assert not private, f"genbook/{name}.py imports {private} from .{node.module}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
            assert not node.attr.startswith("_"), f"genbook/{name}.py uses {node.value.id}.{node.attr}"
