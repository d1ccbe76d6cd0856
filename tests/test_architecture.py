"""The rooms' import rules (docs/architecture.md), read from the source with `ast`: a rule broken fails here."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ROOMS = ("studio", "envs", "rater", "agents", "evaluation")
FORBIDDEN = {
    "studio": {"envs", "rater", "agents", "evaluation"},
    "envs": {"rater", "agents", "evaluation"},
    "rater": {"envs", "agents", "evaluation"},
    "agents": {"evaluation"},
    "evaluation": set(),
}
EXCEPTIONS = {("envs/piano.py", "rater.scorer")}  # PianoEnv(scorer=None) loads the default rater, lazily


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("room", ROOMS)
def test_no_room_imports_a_room_above_it(room):
    broken = []
    for path in sorted((ROOT / room).rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        for module in imports(path):
            if module.split(".")[0] in FORBIDDEN[room] and (rel, module) not in EXCEPTIONS:
                broken.append(f"{rel} imports {module}")
    assert not broken, "\n".join(broken)


def test_the_documented_exception_is_still_lazy():
    """The one upward import must stay inside a function, so importing envs never loads the rater."""
    tree = ast.parse((ROOT / "envs" / "piano.py").read_text())
    top_level = {n.module for n in tree.body if isinstance(n, ast.ImportFrom)}
    assert "rater.scorer" not in top_level
