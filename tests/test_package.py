"""The package's front door."""

import pytest

from igan_utils.book import verdicts


def test_the_front_door_exports_what_a_user_needs():
    import igan_utils

    for name in igan_utils.__all__:
        assert callable(getattr(igan_utils, name)), name
    assert igan_utils.compare_pools is verdicts.compare_pools
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        igan_utils.nope


def _documented_parameters(doc: str) -> set[str]:
    args = doc.split("Args:", 1)[1].split("\n\n", 1)[0]
    names = set()
    for line in args.splitlines():
        head = line.strip().split(":", 1)[0]
        if line.startswith("    ") and not line.startswith("     ") and ":" in line:
            names |= {name.strip() for name in head.split(",")}
    return names


@pytest.mark.parametrize("name", __import__("igan_utils").__all__)
def test_every_exported_name_follows_the_docstring_template(name):
    """Arguments with their defaults, shapes and ranges; what comes back; one example (as torchattacks
    and Captum document theirs)."""
    import inspect

    import igan_utils

    obj = getattr(igan_utils, name)
    doc = inspect.getdoc(obj)
    assert doc and "Example:" in doc, f"{name}: no Example section"
    parameters = [p for p in inspect.signature(obj).parameters.values()
                  if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != "self"]
    if parameters:
        assert "Args:" in doc, f"{name}: no Args section"
        missing = {p.name for p in parameters} - _documented_parameters(doc)
        assert not missing, f"{name}: arguments not documented: {sorted(missing)}"
    if not inspect.isclass(obj) and inspect.signature(obj).return_annotation not in (None, "None"):
        assert "Returns:" in doc, f"{name}: no Returns section"


def test_the_examples_that_need_no_model_run():
    import doctest

    import igan_utils

    for name in igan_utils.__all__:
        obj = getattr(igan_utils, name)
        for test in doctest.DocTestFinder(recurse=False).find(obj, name, globs={name: obj}):
            result = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS).run(test)
            assert result.failed == 0, name


def test_the_package_imports_form_no_cycle():
    """Module-level and lazy (in-function) imports between the package's modules: a layering, no cycle."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "igan_utils"
    names = {p: ".".join(p.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")
             for p in root.rglob("*.py")}
    known = set(names.values())
    graph = {}
    for path, name in names.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
                deps |= {target} & known | {f"{target}.{a.name}" for a in node.names} & known
        graph[name] = deps - {name, "igan_utils"}  # the front door (and __version__) sits above every layer
    done, path_ = set(), []

    def visit(node):
        assert node not in path_, "import cycle: " + " -> ".join(path_[path_.index(node):] + [node])
        if node not in done:
            path_.append(node)
            for dep in sorted(graph[node]):
                visit(dep)
            path_.pop()
            done.add(node)

    for node in sorted(graph):
        visit(node)
    assert graph["igan_utils.method.validation"] <= {"igan_utils.method.runtime"}  # the input checks sit at the bottom
    for name, deps in graph.items():  # two layers and the diagnosis on top: no upward import
        if name.startswith("igan_utils.method"):
            assert all(d.startswith("igan_utils.method") for d in deps), f"{name} imports {deps}"
        if name.startswith("igan_utils.book"):
            assert not any(d.startswith("igan_utils.diagnose") for d in deps), f"{name} imports {deps}"


def test_package_imports_are_at_the_top_of_each_module():
    """A reader of a module's header sees everything it uses from the package (the front door's lazy
    exports and the version number aside)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "igan_utils"
    hidden = []
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        top = {id(node) for node in tree.body}
        hidden += [f"{path.relative_to(root)}:{node.lineno}" for node in ast.walk(tree)
                   if isinstance(node, ast.ImportFrom) and node.level and id(node) not in top
                   and not (path == root / "__init__.py" or [a.name for a in node.names] == ["__version__"])]
    assert hidden == []


def test_every_declared_all_is_true():
    import importlib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "igan_utils"
    for path in root.rglob("*.py"):
        name = ".".join(path.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")
        if name.endswith("__main__"):
            continue
        module = importlib.import_module(name)
        for exported in getattr(module, "__all__", []):
            assert hasattr(module, exported), f"{name}.__all__ names {exported}, which it lacks"
