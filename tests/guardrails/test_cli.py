"""The command line: scan exit codes and JSON shape, policy check output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

POLICY = """
policy: {id: cli-test}
detectors:
  - name: kw
    type: keywords
    stages: [input, output]
    options:
      terms: {PERSON: [Ada Lovelace], secret: [hunter2], rude: [dimwit]}
    rules:
      PERSON: {action: pseudonymise}
      secret: {action: block}
      rude: {action: flag}
"""


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    p = tmp_path / "p.yaml"
    p.write_text(POLICY)
    return p


def run(args: list[str], stdin: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRUSTWALL_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run([sys.executable, "-m", "guardrails.cli", *args], input=stdin, capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=120)


def test_scan_json_pseudonymises(policy_file: Path, tmp_path: Path) -> None:
    proc = run(["scan", "--stage", "input", "--policy", str(policy_file), "--json"], "Hi, I am Ada Lovelace\n", tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["action"] == "redact"
    assert out["text"] == "Hi, I am <PERSON_1>"
    (f,) = out["findings"]
    assert f["detector"] == "kw" and f["category"] == "PERSON" and f["span"] == [9, 21] and f["score"] == 1.0
    assert (tmp_path / "data" / "hash.key").exists()


def test_scan_block_exits_3(policy_file: Path, tmp_path: Path) -> None:
    proc = run(["scan", "--policy", str(policy_file), "--json"], "password hunter2", tmp_path)
    assert proc.returncode == 3
    out = json.loads(proc.stdout)
    assert out["action"] == "block" and out["categories"] == ["secret"]
    assert out["message"]


def test_scan_flag_exits_0_plain_output(policy_file: Path, tmp_path: Path) -> None:
    proc = run(["scan", "--stage", "output", "--policy", str(policy_file)], "what a dimwit", tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.startswith("action: flag")
    assert "kw/rude" in proc.stdout


def test_scan_usage_errors_exit_2(policy_file: Path, tmp_path: Path) -> None:
    assert run(["scan", "--stage", "sideways", "--policy", str(policy_file)], "x", tmp_path).returncode == 2
    proc = run(["scan", "--policy", str(tmp_path / "missing.yaml")], "x", tmp_path)
    assert proc.returncode == 2 and "file not found" in proc.stderr and "Traceback" not in proc.stderr


def test_policy_check_prints_what_it_enables(policy_file: Path, tmp_path: Path) -> None:
    proc = run(["policy", "check", str(policy_file)], "", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stdout and "input: kw (keywords)" in proc.stdout and "PERSON>=0.5:pseudonymise" in proc.stdout


def test_global_data_dir_option_is_honoured_by_subcommands(policy_file: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    proc = run(["--data-dir", str(elsewhere), "scan", "--policy", str(policy_file)], "Ada Lovelace", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (elsewhere / "hash.key").exists() and not (tmp_path / "data" / "hash.key").exists()
    proc = run(["--data-dir", str(elsewhere), "corpus", "stats"], "", tmp_path)
    assert proc.returncode in (0, 2) and "Traceback" not in proc.stderr
    assert str(tmp_path / "data") not in proc.stdout + proc.stderr
