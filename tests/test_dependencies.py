"""pyproject.toml declares every third-party module the code imports, and requirements.lock pins every declaration.

`make install` installs from requirements.lock only, so a dependency added to pyproject.toml without `make lock`
would be missing on a new machine, and one imported without being declared would arrive (or not) by chance.
"""

import ast
import sys
import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
LOCAL = {"agent", "calls", "sip", "stack", "local_openai", "playground", "bench", "tests", "tools", "scripts", "cli",
         "main"}
SOURCES = [*sorted(LOCAL - {"cli", "main"}), "cli.py", "main.py"]
# Imported inside `try: ... except ImportError` with a fallback, so not needed (bench/stt_wer.py counts word errors
# itself without jiwer).
OPTIONAL = {"jiwer"}


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(line) for line in project["dependencies"] + project["optional-dependencies"]["test"]]


def locked() -> dict[str, str]:
    """{canonical name: version} from requirements.lock's `name==version \\` lines."""
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            name, _, version = line.split(" ")[0].partition("==")
            pins[canonicalize_name(name)] = version
    return pins


def imported_modules() -> dict[str, set[str]]:
    """{dotted module name: files importing it}, third-party only (`from x import y` also counts x.y: y may be a
    module of a namespace package, as in `from livekit import rtc`)."""
    found: dict[str, set[str]] = {}
    for source in SOURCES:
        path = ROOT / source
        files = [path] if path.is_file() else sorted(path.rglob("*.py")) if path.is_dir() else []
        for file in files:
            if "node_modules" in file.parts:
                continue
            for node in ast.walk(ast.parse(file.read_text(), str(file))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [f"{node.module}.{alias.name}" for alias in node.names]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in LOCAL and top != "__future__":
                        found.setdefault(name, set()).add(str(file.relative_to(ROOT)))
    return found


@cache
def shipped_files(distribution: str) -> tuple[str, ...]:
    return tuple(str(file) for file in metadata.distribution(distribution).files or ())


def owners(module: str, top_level: dict[str, list[str]]) -> set[str]:
    """The installed distributions that provide `module`: the deepest dotted prefix that some distribution ships."""
    parts = module.split(".")
    candidates = top_level.get(parts[0], [])
    for depth in range(len(parts), 0, -1):
        prefix = "/".join(parts[:depth])
        found = {
            canonicalize_name(dist)
            for dist in candidates
            if any(
                file == f"{prefix}.py" or file.startswith(f"{prefix}/")
                or (file.startswith(f"{prefix}.") and file.endswith(".so"))
                for file in shipped_files(dist)
            )
        }
        if found:
            return found
    return set()


def test_every_declared_dependency_is_pinned_in_the_lock_within_its_range():
    pins = locked()
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is in pyproject.toml but not in requirements.lock: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {name}=={pins[name]}, outside pyproject.toml's {requirement}: run `make lock`"
        )


def test_every_locked_package_has_hashes():
    """Each `name==version \\` line is followed by its `--hash=sha256:...` lines (pip --require-hashes checks them)."""
    text = (ROOT / "requirements.lock").read_text()
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line and not line[0].isspace() and not line.startswith("#"):
            assert line.endswith("\\") and "--hash=sha256:" in lines[index + 1], f"{line} has no hash"


def test_every_imported_third_party_module_is_declared():
    names = {canonicalize_name(requirement.name) for requirement in declared()}
    top_level = metadata.packages_distributions()
    undeclared = []
    for module, files in sorted(imported_modules().items()):
        if module.split(".")[0] in OPTIONAL:
            continue
        provided_by = owners(module, top_level)
        if not provided_by & names:
            undeclared.append(f"{module} ({', '.join(sorted(provided_by)) or 'not installed'}) in {sorted(files)}")
    assert not undeclared, "imported but not declared in pyproject.toml:\n" + "\n".join(undeclared)
