"""docs/configuration.md: one table row for every setting the code reads, and no other rows.

The names come from the code itself (ast over the Python, a pattern over bin/'s shell), so a
setting added without a row, or a row left behind by a removed setting, fails here.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "configuration.md"
# The apps read Django settings (setting(), settings.X); every module may read the environment.
APP_PACKAGES = ("molecule", "pending_uploads", "scheduler")
ENTRY_POINTS = ("manage.py", "gunicorn.conf.py")
DEV_TOOLS = "devtools"
SHELL_SCRIPTS = "bin"

# Mappings that hold the process environment: os.environ, and the dev tools' `env` copies.
ENVIRONMENTS = ("os.environ", "env")
# The first cell of a table row: | `NAME` | ...
ROW_NAME = re.compile(r"^\|\s*`([^`]+)`\s*\|")
# A variable a shell script expands: $NAME or ${NAME...}; lower case are the script's own.
SHELL_READ = re.compile(r"\$\{?([A-Z][A-Z0-9_]*)")


def _string(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _loop_names(tree: ast.Module) -> dict[str, list[str]]:
    """Loop variables over module-level tuples of names: ``for name in MULTIPROC_VARIABLES``."""
    tuples: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple | ast.List):
            items = [_string(item) for item in node.value.elts]
            names = [item for item in items if item]
            if names and len(names) == len(items):
                tuples.update(
                    (target.id, names) for target in node.targets if isinstance(target, ast.Name)
                )
    return {
        node.target.id: tuples.get(node.iter.id, [])
        for node in ast.walk(tree)
        if isinstance(node, ast.For | ast.comprehension)
        and isinstance(node.target, ast.Name)
        and isinstance(node.iter, ast.Name)
    }


def _key(node: ast.AST, *, django_settings: bool) -> ast.AST | None:
    """The expression naming what ``node`` reads, when it reads the environment or a setting."""
    if isinstance(node, ast.Call) and node.args:
        func = ast.unparse(node.func)
        if isinstance(node.func, ast.Attribute) and node.func.attr in {"get", "pop"}:
            return node.args[0] if ast.unparse(node.func.value) in ENVIRONMENTS else None
        # the settings' and gunicorn.conf.py's readers: _env_int("NAME", ...), ...
        if func == "os.getenv" or func.startswith("_env"):
            return node.args[0]
        if django_settings and func == "setting":
            return node.args[0]
        if django_settings and func == "getattr" and ast.unparse(node.args[0]) == "settings":
            return node.args[1] if len(node.args) > 1 else None
    elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
        return node.slice if ast.unparse(node.value) in ENVIRONMENTS else None
    elif isinstance(node, ast.Compare) and [type(op) for op in node.ops] == [ast.In]:
        return node.left if ast.unparse(node.comparators[0]) in ENVIRONMENTS else None
    elif django_settings and isinstance(node, ast.Attribute) and node.attr.isupper():
        return ast.Constant(node.attr) if ast.unparse(node.value) == "settings" else None
    return None


def names_read(source: str, *, django_settings: bool) -> set[str]:
    """Every environment variable ``source`` reads, and with ``django_settings`` every setting."""
    tree = ast.parse(source)
    loops = _loop_names(tree)
    names: set[str] = set()
    for node in ast.walk(tree):
        key = _key(node, django_settings=django_settings)
        if isinstance(key, ast.Name):
            names.update(loops.get(key.id, []))
        elif key is not None and (text := _string(key)):
            names.add(text)
    return names


def _python_files(*paths: str) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        target = ROOT / path
        files.extend(sorted(target.rglob("*.py")) if target.is_dir() else [target])
    return files


def settings_in_code() -> set[str]:
    names: set[str] = set()
    for path in _python_files(*APP_PACKAGES):
        names |= names_read(path.read_text(), django_settings=True)
    for path in _python_files(*ENTRY_POINTS, DEV_TOOLS):
        names |= names_read(path.read_text(), django_settings=False)
    for path in sorted((ROOT / SHELL_SCRIPTS).iterdir()):
        names |= set(SHELL_READ.findall(path.read_text()))
    return names


def table_rows(page: Path) -> Counter[str]:
    """How often each name heads a table row of ``page``."""
    rows = (ROW_NAME.match(line) for line in page.read_text().splitlines())
    return Counter(row.group(1) for row in rows if row)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('os.environ.get("A", "")', {"A"}),
        ('os.environ["A"]', {"A"}),
        ('os.environ.pop("A", None)', {"A"}),
        ('os.getenv("A")', {"A"}),
        ('"A" in os.environ', {"A"}),
        ('env.get("A")', {"A"}),
        ('_env_int("A", 2)', {"A"}),
        ('_env_parsed("A", parse, 3)', {"A"}),
        ('setting("A", 1)', {"A"}),
        ('getattr(settings, "A", 1)', {"A"}),
        ("settings.A", {"A"}),
        ('NAMES = ("A", "B")\nfor name in NAMES:\n    os.environ.pop(name, None)', {"A", "B"}),
        ('NAMES = ("A", "B")\nany(name in os.environ for name in NAMES)', {"A", "B"}),
        # Writes and other mappings are not reads.
        ('os.environ.setdefault("A", "1")', set()),
        ('env["A"] = "1"', set()),
        ('options.get("A")', set()),
        ("os.environ.get(name)", set()),
    ],
)
def test_names_read_finds_each_kind_of_read(source: str, expected: set[str]) -> None:
    assert names_read(source, django_settings=True) == expected


def test_django_settings_are_read_only_from_the_apps() -> None:
    assert names_read('setting("A", 1)\nsettings.B', django_settings=False) == set()


def test_shell_reads_are_upper_case_expansions() -> None:
    script = 'x="${PYTHON:-python3}" y="$HOME" z="${extras:-base}" "$@" "$0"'

    assert set(SHELL_READ.findall(script)) == {"PYTHON", "HOME"}


def test_every_setting_read_in_code_has_exactly_one_row() -> None:
    rows = table_rows(PAGE)

    missing = sorted(settings_in_code() - set(rows))
    repeated = sorted(name for name, count in rows.items() if count > 1)
    assert not missing, f"read in code, no row in docs/configuration.md: {missing}"
    assert not repeated, f"more than one row in docs/configuration.md: {repeated}"


def test_every_row_names_a_setting_read_in_code() -> None:
    stale = sorted(set(table_rows(PAGE)) - settings_in_code())

    assert not stale, f"rows in docs/configuration.md that nothing reads: {stale}"


def test_no_other_page_has_a_row_for_a_setting() -> None:
    settings = settings_in_code()
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

    elsewhere = {
        f"{page.relative_to(ROOT)}: {name}"
        for page in pages
        if page != PAGE
        for name in table_rows(page)
        if name in settings
    }
    assert not elsewhere, f"settings are described in docs/configuration.md only: {elsewhere}"
