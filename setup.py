"""twotower package. Versions come from constraints.txt, the one place they are pinned."""

import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _lines(path: str) -> list:
    """Returns the non-comment, non-empty lines of ``path``."""
    with open(os.path.join(HERE, path), encoding="utf-8") as f:
        return [s for s in (line.split("#")[0].strip() for line in f) if s]


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


PINS = {_key(line.split("==")[0]): line.split("==")[1] for line in _lines("constraints.txt")}


def pinned(requirements_file: str) -> list:
    """Returns each requirement of ``requirements_file`` pinned to its constraints.txt version."""
    result = []
    for requirement in _lines(requirements_file):
        name = requirement.split("[")[0]
        if _key(name) not in PINS:
            raise SystemExit(f"{requirements_file}: '{name}' has no pin in constraints.txt (run: make lock)")
        result.append(f"{requirement}=={PINS[_key(name)]}")
    return result


setup(
    name="twotower",
    version="0.1.0",
    description="A production two-tower retrieval recommender on TFX, TFT, TFDV and TFRS.",
    python_requires=">=3.10,<3.11",
    packages=find_packages(include=["twotower", "twotower.*"]),
    package_data={"twotower": ["config/*.yaml", "schema/*.pbtxt"]},
    install_requires=pinned("requirements/direct.in"),
    extras_require={"dev": pinned("requirements/dev.in")},
    entry_points={"console_scripts": ["twotower=twotower.cli:main"]},
)
