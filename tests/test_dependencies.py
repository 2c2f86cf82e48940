"""Every third-party package the code imports is declared once (layer/pyproject.toml) and pinned in
the requirements files, at a version inside the declared range; the lock (requirements.txt) carries a
hash for every package, and it is what this environment runs."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions, version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [*(ROOT / "layer/python").rglob("*.py"), *(ROOT / "function").glob("*.py")]
OWN = {"embedding_engine", "handler"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_modules(path: Path) -> set[str]:
    """Top-level modules a file imports (absolute imports only: relative ones are its own)."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    return modules


def declared() -> dict[str, Requirement]:
    """layer/pyproject.toml's dependencies and every extra's, by distribution name."""
    project = tomllib.loads((ROOT / "layer/pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = [
        *project["dependencies"],
        *(d for extra in project["optional-dependencies"].values() for d in extra),
    ]
    return {canonical(requirement.name): requirement for requirement in map(Requirement, lines)}


def pinned(*files: str) -> dict[str, str]:
    pins = {}
    for name in files:
        for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
            match = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?==([^\s#]+).*", line.strip())
            if match:
                pins[canonical(match[1])] = match[2]
    return pins


def test_every_third_party_import_is_declared() -> None:
    distributions = packages_distributions()
    third_party = {
        module
        for path in SOURCES
        for module in imported_modules(path)
        if module not in sys.stdlib_module_names and module not in OWN
    }
    assert {"torch", "psycopg", "uvicorn"} <= third_party  # the scan sees the heavy imports
    undeclared = {
        module: distributions.get(module, ["?"])
        for module in third_party
        if not {canonical(name) for name in distributions.get(module, [])} & set(declared())
    }
    assert undeclared == {}, "imported but not in layer/pyproject.toml (dependencies or an extra)"


def test_every_declared_dependency_is_pinned_inside_its_range() -> None:
    pins = pinned("requirements-torch.txt", "requirements.txt", "requirements-dev.txt")
    for name, requirement in declared().items():
        assert name in pins, f"{name} is declared in layer/pyproject.toml but pinned in no requirements file"
        assert requirement.specifier.contains(pins[name], prereleases=True), (name, pins[name])


def test_the_image_pins_everything_it_imports() -> None:
    """requirements.txt (what the image installs) pins the dependencies, the indexing ones and the
    runtime interface client; the `local` extra is for development only."""
    project = tomllib.loads((ROOT / "layer/pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    runtime = [*project["dependencies"], *extras["indexing"], *extras["runtime"]]
    image = pinned("requirements-torch.txt", "requirements.txt")
    assert {canonical(Requirement(line).name) for line in runtime} - set(image) == set()


def locked() -> list[tuple[Requirement, list[str]]]:
    """requirements.txt's requirements (with their markers) and their hashes."""
    text = (ROOT / "requirements.txt").read_text(encoding="utf-8").replace("\\\n", " ")
    entries = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            requirement, *options = line.split(" --hash=")
            entries.append((Requirement(requirement.strip()), [option.strip() for option in options]))
    return entries


def test_every_locked_package_has_its_hashes() -> None:
    entries = locked()
    assert len(entries) > 40  # the whole closure, not only the direct dependencies
    assert [str(requirement) for requirement, hashes in entries if not hashes] == []
    assert all(digest.startswith("sha256:") for _, hashes in entries for digest in hashes)


def test_this_environment_runs_the_locked_versions() -> None:
    """What `make install` installed is the lock (for the entries whose markers apply here): the tests
    exercise the versions the image ships."""
    applying = [
        requirement
        for requirement, _ in locked()
        if requirement.marker is None or requirement.marker.evaluate()
    ]
    differing = {}
    for requirement in applying:
        [pin] = requirement.specifier
        if Version(version(requirement.name)) != Version(pin.version):
            differing[requirement.name] = (pin.version, version(requirement.name))
    assert differing == {}
