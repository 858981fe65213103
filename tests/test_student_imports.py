"""The student never imports the teacher dump (DESIGN §1): a static check over its source."""

from __future__ import annotations

import ast
from pathlib import Path

STUDENT = Path(__file__).resolve().parents[1] / "student"


def imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            names.extend(a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str))
    return names


def test_no_student_module_imports_teacher_dump():
    files = sorted(STUDENT.rglob("*.py"))
    assert len(files) > 20
    offenders = [
        f"{f.relative_to(STUDENT.parent)}: {m}"
        for f in files
        for m in imported_modules(f)
        if m == "teacher_dump" or m.startswith("teacher_dump.")
    ]
    assert offenders == []


def test_the_check_sees_an_offending_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom teacher_dump.teachers import procedural\nimportlib.import_module('teacher_dump')\n")
    assert imported_modules(bad) == ["os", "teacher_dump.teachers", "teacher_dump"]
