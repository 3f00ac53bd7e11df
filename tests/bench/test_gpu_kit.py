"""bench/gpu/requirements.txt (the wheels carried to a lent GPU machine) pins exactly what this
suite runs with (or, for an extra the suite does not install, pyproject.toml's pin), so the GPU
figures are taken on the versions CI tested."""

import importlib.metadata as md
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def expected_version(name: str, pyproject_pins: dict[str, str]) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return pyproject_pins.get(norm(name))


def test_gpu_wheels_are_the_versions_the_suite_runs_with():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + sum(project["optional-dependencies"].values(), [])
    pyproject_pins = {norm(re.split(r"[\[=<>]", r)[0]): r.split("==")[1] for r in requirements if "==" in r}
    pins = [line.split("==") for line in (ROOT / "bench" / "gpu" / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert len(pins) > 20 and all(len(p) == 2 for p in pins)
    names = {norm(name) for name, _ in pins}
    assert names >= {"diffusers", "transformers", "fastapi", "pydantic", "torchao"}
    assert "torch" not in names  # the machine's own CUDA build stays
    stale = {name: (pinned, expected_version(name, pyproject_pins)) for name, pinned in pins
             if expected_version(name, pyproject_pins) != pinned}
    assert not stale, stale
