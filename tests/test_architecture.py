"""The stage boundary (DESIGN §1): student and teacher_dump never import each other; pipeline neither."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def imported_top_levels(package: str) -> dict[str, set[str]]:
    """file -> top-level modules it imports (absolute imports; relative ones stay inside the package)."""
    out: dict[str, set[str]] = {}
    for path in sorted((REPO / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module" and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    names.add(arg.value.split(".")[0])
                elif isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
                    names.add(str(arg.values[0].value).split(".")[0])
        out[str(path.relative_to(REPO))] = names
    return out


def test_every_package_has_sources():
    for package in ("pipeline", "teacher_dump", "student"):
        assert imported_top_levels(package), package


def test_student_never_imports_teacher_dump():
    bad = {f: n for f, n in imported_top_levels("student").items() if "teacher_dump" in n}
    assert not bad, bad


def test_teacher_dump_never_imports_student():
    bad = {f: n for f, n in imported_top_levels("teacher_dump").items() if "student" in n}
    assert not bad, bad


def test_pipeline_imports_neither_stage_nor_heavy_teacher_libraries():
    forbidden = {"student", "teacher_dump", "ray", "diffusers"}
    bad = {f: n & forbidden for f, n in imported_top_levels("pipeline").items() if n & forbidden}
    assert not bad, bad


def test_the_checker_sees_imports(tmp_path):
    # guard against a checker that can never fail: it must find a known import in this very file
    names = imported_top_levels("tests")
    assert "ast" in names["tests/test_architecture.py"]
