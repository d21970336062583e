"""The package list, which pyproject.toml cannot state: the code found under
runner/, plus the three asset folders mapped into it (see [tool.setuptools])."""

from setuptools import find_packages, setup

ASSETS = ["runner.assets.schemas", "runner.assets.templates", "runner.assets.playbooks"]

setup(packages=[*find_packages(include=["runner", "runner.*"]), *ASSETS])
