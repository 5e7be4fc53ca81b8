"""`trustwall serve` and `trustwall keys`: exit codes, one-time keys, and a real served process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
from typer.testing import CliRunner

from guardrails.cli import app

POLICY = """
policy: {id: cli-serve}
detectors:
  - name: kw
    type: keywords
    stages: [input, output]
    options: {terms: {PERSON: ["Alice Smith"]}}
    rules: {PERSON: {action: pseudonymise}}
access:
  roles: {local: {}, user: {}}
upstreams:
  - {name: echo, kind: echo}
"""


def _run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_keys_create_list_revoke(tmp_path):
    pol = tmp_path / "p.yaml"
    pol.write_text(POLICY)
    r = _run("--data-dir", str(tmp_path), "keys", "create", "--role", "user", "--name", "ci", "--policy", str(pol))
    assert r.exit_code == 0, r.output
    key = r.stdout.strip().splitlines()[0]
    assert key.startswith("tw-")
    kid = key[3:15]
    r = _run("--data-dir", str(tmp_path), "keys", "list")
    assert r.exit_code == 0 and kid in r.stdout and "user" in r.stdout and key not in r.stdout
    r = _run("--data-dir", str(tmp_path), "keys", "create", "--role", "nope", "--policy", str(pol))
    assert r.exit_code == 2 and "not defined" in r.output
    r = _run("--data-dir", str(tmp_path), "keys", "revoke", kid)
    assert r.exit_code == 0
    r = _run("--data-dir", str(tmp_path), "keys", "revoke", kid)
    assert r.exit_code == 2 and "no active key" in r.output
    assert key.split(".", 1)[1].encode() not in (tmp_path / "keys.sqlite3").read_bytes()


def test_serve_refuses_bad_setups(tmp_path):
    pol = tmp_path / "p.yaml"
    pol.write_text(POLICY)
    r = _run("--data-dir", str(tmp_path), "serve", "--host", "0.0.0.0", "--policy", str(pol))
    assert r.exit_code == 2 and "--allow-anonymous" in r.output
    r = _run("--data-dir", str(tmp_path), "serve", "--policy", str(pol), "--upstream", "ftp://x")
    assert r.exit_code == 2 and "--upstream" in r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("policy: {id: x}\nupstreams: [{name: a, kind: nope}]\n")
    r = _run("--data-dir", str(tmp_path), "serve", "--policy", str(bad))
    assert r.exit_code == 2 and "bad.yaml" in r.output and "Traceback" not in r.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_end_to_end_with_echo_and_audit(tmp_path):
    pol = tmp_path / "p.yaml"
    pol.write_text(POLICY)
    port = _free_port()
    env = {**os.environ, "TRUSTWALL_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen([sys.executable, "-m", "guardrails.cli", "serve", "--port", str(port), "--policy", str(pol),
                             "--upstream", "echo", "--log-level", "warning"], env=env, cwd=Path(__file__).parents[2],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode() if proc.stdout else ""
            time.sleep(0.2)
        c = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="anything", max_retries=0)
        raw = c.chat.completions.with_raw_response.create(model="any", messages=[{"role": "user", "content": "I am Alice Smith"}])
        assert raw.parse().choices[0].message.content == "I am <PERSON_1>"  # echo shows what a model receives
        assert raw.headers["x-trustwall-action"] == "redact"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # the served process wrote its audit record (redacted text only) to the data dir's audit log
    r = _run("--data-dir", str(tmp_path / "data"), "audit", "export")
    assert r.exit_code == 0, r.output
    assert raw.headers["x-trustwall-request-id"] in r.stdout and "Alice Smith" not in r.stdout
