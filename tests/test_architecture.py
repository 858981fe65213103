"""The architecture, checked statically over the source: which package may import which, and no import cycles.

`pipeline` is the contract both stages build on; `teacher_dump` and `student` never import each other, and
`pipeline` imports neither (docs/design.md §Stages). Imports are read with `ast`, so nothing is executed. And the
repository stands alone: no tracked file reads or cites files beside the checkout.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "teacher_dump", "student")
# The student's parts, lowest first. A module imports its own part and lower ones only: never a higher part, never
# another part of its own rank. "" is the student's top-level modules (configs, run layout), the base of all.
# Training uses evaluation's measuring code; evaluation reads training's results from files, never imports it.
STUDENT_LAYERS = (("",), ("render",), ("mesh", "model"), ("generate",), ("eval", "app"), ("train",))


def module_name(path: Path, root: Path = REPO) -> str:
    """`student/train/cli.py` -> `student.train.cli`; a package's `__init__.py` is the package itself."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, root: Path = REPO) -> list[str]:
    """Every name `path` imports, absolute: `import a.b` as `a.b`, `from a import b` as `a.b` (b may be a module or a
    name defined in `a`), relative imports resolved against the file's package, and `importlib.import_module("...")`
    with a literal (or an f-string's literal head)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.extend(module if alias.name == "*" else f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.append(arg.value)
            elif isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
                names.append(str(arg.values[0].value).rstrip("."))
    return names


def import_graph(packages: tuple[str, ...] = PACKAGES, root: Path = REPO) -> dict[str, set[str]]:
    """module -> the modules of `packages` it imports: each imported name stands for the longest prefix of it that
    is one of our modules (`pkg.a.thing` -> `pkg.a`); names outside `packages` are dropped."""
    files = {module_name(f, root): f for p in packages for f in sorted((root / p).rglob("*.py"))}

    def ours(name: str) -> str | None:
        parts = name.split(".")
        return next((m for k in range(len(parts), 0, -1) if (m := ".".join(parts[:k])) in files), None)

    graph = {}
    for m, f in files.items():
        graph[m] = {o for n in imported_modules(f, root) if (o := ours(n)) is not None and o != m}
    return graph


def top_levels(graph: dict[str, set[str]], package: str) -> dict[str, set[str]]:
    return {m: {n.split(".")[0] for n in deps} for m, deps in graph.items() if m.split(".")[0] == package}


def student_part(module: str) -> str:
    """`student.eval.report` -> "eval"; `student.config` -> "" (a top-level module)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else ""


def upward_imports(graph: dict[str, set[str]], layers: tuple[tuple[str, ...], ...]) -> list[str]:
    """Every import of a student module that goes to a higher part or a sibling part of the same rank."""
    rank = {part: i for i, layer in enumerate(layers) for part in layer}
    bad = []
    for module, deps in sorted(graph.items()):
        if module.split(".")[0] != "student":
            continue
        here = student_part(module)
        for dep in sorted(d for d in deps if d.split(".")[0] == "student"):
            there = student_part(dep)
            if there != here and rank[there] >= rank[here]:
                bad.append(f"{module} -> {dep}")
    return bad


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as [a, b, ..., a], or [] when the graph has none (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return []


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_every_package_has_sources(graph):
    for package in PACKAGES:
        assert len(top_levels(graph, package)) > 5, package


def test_student_never_imports_teacher_dump(graph):
    bad = {m: n for m, n in top_levels(graph, "student").items() if "teacher_dump" in n}
    assert not bad, bad


def test_teacher_dump_never_imports_student(graph):
    bad = {m: n for m, n in top_levels(graph, "teacher_dump").items() if "student" in n}
    assert not bad, bad


def test_pipeline_imports_neither_stage_nor_heavy_teacher_libraries():
    forbidden = {"student", "teacher_dump", "ray", "diffusers"}
    bad = {}
    for path in sorted((REPO / "pipeline").rglob("*.py")):
        found = {n.split(".")[0] for n in imported_modules(path)} & forbidden
        if found:
            bad[module_name(path)] = found
    assert not bad, bad


def test_student_parts_import_downwards_only(graph):
    parts = {student_part(m) for m in graph if m.startswith("student.")}
    assert parts == {p for layer in STUDENT_LAYERS for p in layer}  # a new part must be given its place
    assert upward_imports(graph, STUDENT_LAYERS) == []


def test_no_import_cycles(graph):
    assert find_cycle(graph) == []


def test_the_checker_sees_imports_and_cycles(tmp_path):
    # guard against checks that can never fail: a known import of each kind, and a planted cycle
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("import os\nfrom .sub import b\n")
    (pkg / "sub" / "b.py").write_text("import importlib\nimportlib.import_module('pkg.c')\n")
    (pkg / "c.py").write_text("from pkg.a import thing\nfrom teacher_dump.teachers import procedural\n")
    assert imported_modules(pkg / "a.py", tmp_path) == ["os", "pkg.sub.b"]
    assert imported_modules(pkg / "c.py", tmp_path) == ["pkg.a.thing", "teacher_dump.teachers.procedural"]
    small = import_graph(("pkg",), tmp_path)
    assert small == {"pkg": set(), "pkg.a": {"pkg.sub.b"}, "pkg.c": {"pkg.a"}, "pkg.sub": set(), "pkg.sub.b": {"pkg.c"}}
    assert find_cycle(small) == ["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]
    (pkg / "c.py").write_text("import os\n")
    assert find_cycle(import_graph(("pkg",), tmp_path)) == []


def test_the_direction_check_sees_upward_and_sideways_imports():
    graph = {
        "student.config": set(),
        "student.model.g": {"student.config", "student.render.r"},
        "student.render.r": {"student.model.g"},  # up
        "student.mesh.m": {"student.render.r"},  # sideways: same rank
        "student.train.t": {"student.eval.e", "student.train.u"},
        "student.eval.e": {"student.model.g"},
    }
    layers = (("",), ("render", "mesh"), ("model",), ("eval",), ("train",))
    assert upward_imports(graph, layers) == [
        "student.mesh.m -> student.render.r",
        "student.render.r -> student.model.g",
    ]


# The repository stands alone (docs/design.md): nothing in it may read or cite files beside the checkout, or
# the design notes it replaced. The needles are assembled at run time so this file does not contain them.
OUTSIDE_CITATIONS = ("/".join(("..", "shared")), "DESIGN" + " §", "NOTES" + " §", "NOTES" + ".md")


def citations_of_outside_files(root: Path, paths: list[str]) -> dict[str, list[str]]:
    """path -> the needles of `OUTSIDE_CITATIONS` its bytes contain (binary files are searched too)."""
    found = {}
    for rel in paths:
        data = (root / rel).read_bytes()
        hits = [needle for needle in OUTSIDE_CITATIONS if needle.encode() in data]
        if hits:
            found[rel] = hits
    return found


def test_no_tracked_file_reads_or_cites_files_outside_the_repository():
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True)
    assert listed.returncode == 0, f"git ls-files failed in {REPO}: {listed.stderr.strip()}"
    tracked = [p for p in listed.stdout.split("\0") if p and (REPO / p).is_file()]
    assert "tests/test_architecture.py" in tracked and len(tracked) > 100  # the real tree, this file included
    assert citations_of_outside_files(REPO, tracked) == {}


def test_the_citation_check_finds_each_needle(tmp_path):
    for i, needle in enumerate(OUTSIDE_CITATIONS):
        (tmp_path / f"f{i}.py").write_text(f"# see {needle}3\n", encoding="utf-8")
    (tmp_path / "clean.md").write_text("see docs/design.md §Cameras\n", encoding="utf-8")
    names = sorted(p.name for p in tmp_path.iterdir())
    found = citations_of_outside_files(tmp_path, names)
    assert found == {f"f{i}.py": [needle] for i, needle in enumerate(OUTSIDE_CITATIONS)}
