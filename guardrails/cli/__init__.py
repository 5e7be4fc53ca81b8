"""The `trustwall` command line: one module a command group (app.py holds the root and scan/policy).

    trustwall serve | keys | scan | policy | audit | corpus | models | bias | experiments | bench
"""

from __future__ import annotations

from guardrails.cli.app import app, main

__all__ = ["app", "main"]
