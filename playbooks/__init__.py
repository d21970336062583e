"""Marks playbooks/ as the package `runner.assets.playbooks` so it ships inside the wheel.

pyproject.toml maps this folder there; runner/assets/ finds it with importlib.resources.
"""
