"""Packages: guardrails (core) and detectors at the top level; the repository's rules/ folder ships
inside the installed package as guardrails.rules, so the embedded default policy is always there."""

from setuptools import find_packages, setup

packages = find_packages(include=["guardrails", "guardrails.*", "detectors", "detectors.*"])
setup(packages=packages + ["guardrails.rules"], package_dir={"guardrails.rules": "rules"})
