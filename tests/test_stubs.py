"""`_core.pyi` against the extension it describes: the same public names, and for every function
and method the same arguments in the same order, none with a default (the defaults live in
`rplacevit.history` and `rplacevit.store`), so the stubs can never drift from the binding."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import rplacevit
from rplacevit import _core

STUB = Path(rplacevit.__file__).parent / "_core.pyi"


def stub_tree() -> ast.Module:
    return ast.parse(STUB.read_text())


def arguments(function: ast.FunctionDef) -> list[str]:
    return [a.arg for a in function.args.args + function.args.kwonlyargs]


def public(names) -> set[str]:
    return {name for name in names if not name.startswith("_")}


def test_the_stub_names_exactly_what_the_extension_has():
    stubbed = set()
    for node in stub_tree().body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            stubbed.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            stubbed.add(node.target.id)
    assert public(stubbed) == public(dir(_core)) - {"_core"}


def test_every_function_and_method_has_the_stubs_arguments_and_no_defaults():
    checked = 0
    for node in stub_tree().body:
        if isinstance(node, ast.FunctionDef):
            members = [(getattr(_core, node.name), node)]
        elif isinstance(node, ast.ClassDef) and node.name == "History":
            members = [(getattr(_core.History, f.name), f) for f in node.body
                       if isinstance(f, ast.FunctionDef) and not any(isinstance(d, ast.Name) and d.id == "property" for d in f.decorator_list)
                       and f.name != "__len__"]
        else:
            continue
        for member, stub in members:
            if stub.name == "__init__":
                signature = inspect.signature(_core.History)
                expected = arguments(stub)[1:]
            else:
                signature = inspect.signature(member)
                expected = arguments(stub)
                if list(signature.parameters)[:1] != ["self"] and expected[:1] == ["self"]:
                    expected = expected[1:]
            assert list(signature.parameters) == expected, (stub.name, signature)
            assert all(p.default is inspect.Parameter.empty for p in signature.parameters.values()), (stub.name, signature)
            assert not stub.args.defaults and not any(stub.args.kw_defaults), stub.name
            checked += 1
    assert checked >= 14  # 4 functions and 10 methods today


def test_every_property_of_the_stub_exists():
    history_stub = next(n for n in stub_tree().body if isinstance(n, ast.ClassDef) and n.name == "History")
    properties = [f.name for f in history_stub.body if isinstance(f, ast.FunctionDef)
                  and any(isinstance(d, ast.Name) and d.id == "property" for d in f.decorator_list)]
    assert properties and all(isinstance(inspect.getattr_static(_core.History, name), type(_core.History.width)) for name in properties)
