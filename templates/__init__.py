"""Marks templates/ as the package `runner.assets.templates` so it ships inside the wheel.

pyproject.toml maps this folder there; runner/assets/ finds it with importlib.resources.
"""
