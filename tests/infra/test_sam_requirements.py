"""The DepsLayer of template-local.yaml installs what ragcore needs, at the versions the project tests.

infra/sam/deps/requirements.txt is written by scripts/sam_requirements.py (`make sam-requirements`); this
test fails when pyproject.toml or constraints.txt changed without regenerating it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "infra" / "sam" / "deps" / "requirements.txt"
FIX = "regenerate it: make sam-requirements"


def _pins(path: Path) -> dict[str, Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return {canonicalize_name(r.name): r for r in map(Requirement, filter(None, lines))}


def test_every_runtime_dependency_of_ragcore_is_in_the_layer_with_its_extras():
    pins = _pins(REQUIREMENTS)
    for text in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        wanted = Requirement(text)
        pinned = pins.get(canonicalize_name(wanted.name))
        assert pinned is not None, f"{wanted.name} is missing from {REQUIREMENTS.name}; {FIX}"
        assert wanted.extras <= pinned.extras, f"{wanted.name}: extras {wanted.extras}; {FIX}"
        (spec,) = pinned.specifier
        assert wanted.specifier.contains(spec.version), f"{pinned} does not satisfy {wanted}; {FIX}"


def test_every_pin_is_exact_and_agrees_with_constraints():
    constraints = _pins(ROOT / "constraints.txt")
    for name, pinned in _pins(REQUIREMENTS).items():
        (spec,) = pinned.specifier
        assert spec.operator == "==", f"{pinned} is not pinned"
        if name in constraints:
            assert str(pinned.specifier) == str(constraints[name].specifier), f"{pinned}: {FIX}"


def test_the_model_layer_pins_the_weights_the_project_tests():
    constraints = _pins(ROOT / "constraints.txt")
    (model,) = _pins(ROOT / "infra" / "sam" / "layers" / "model-requirements.txt").values()
    assert str(model.specifier) == str(constraints[canonicalize_name(model.name)].specifier)
