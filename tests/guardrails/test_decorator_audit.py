"""The decorator with the real audit log (SQLite in the data dir): one record per call, redacted text
only, a verifiable chain, whether the Guard is closed explicitly or left to the interpreter's exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from guardrails.audit import open_store, verify
from guardrails.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
POLICY = r"""
policy: {id: audit-kw}
detectors:
  - {name: pii, type: keywords, stages: [input, output], options: {patterns: {EMAIL_ADDRESS: ['\S+@example\.com']}},
     rules: {'*': {action: pseudonymise}}}
  - {name: tox, type: keywords, stages: [output], options: {terms: {toxicity: [idiot]}}, rules: {'*': {action: block}}}
"""

SCRIPT = """
from guardrails import Blocked, Guard
from guardrails.settings import Settings

g = Guard.from_policy({policy!r}, settings=Settings(data_dir={data!r}))

@g.guard
def ask(prompt):
    return "idiot" if "rude" in prompt else "hi " + prompt

print(ask("mail me at someone@example.com"))
try:
    ask("be rude")
except Blocked:
    print("blocked")
@g.guard
def stream(prompt):
    yield "streamed "
    yield prompt

print("".join(stream("to other@example.com")))
{close}
"""


@pytest.mark.parametrize("close", ["g.close()", "# left to the interpreter's exit"], ids=["closed", "at-exit"])
def test_records_reach_the_audit_log(tmp_path: Path, close: str) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY)
    data = tmp_path / "data"
    code = SCRIPT.format(policy=str(policy), data=str(data), close=close)
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["hi mail me at someone@example.com", "blocked", "streamed to other@example.com"]
    assert "Traceback" not in out.stderr
    settings = Settings(data_dir=data)
    store = open_store(settings)
    try:
        bodies = [r.parsed() for r in store.records()]
        assert [b["route"] for b in bodies] == ["decorator"] * 3
        assert [b["final"] for b in bodies] == ["redact", "block", "redact"]
        assert [b["status"] for b in bodies] == [200, 200, 200]
        assert [b["streamed"] for b in bodies] == [False, False, True]
        assert "someone@example.com" not in str(bodies) and "other@example.com" not in str(bodies)
        assert bodies[0]["text"]["input"] == ["mail me at <EMAIL_ADDRESS_1>"]
        assert verify(store, settings).ok
    finally:
        store.close()
