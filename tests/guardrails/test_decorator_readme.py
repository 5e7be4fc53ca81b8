"""The README's decorator and client-wrapper examples run as written.

The examples are the python blocks between `<!-- example:decorator -->` and `<!-- /example -->`, taken
from README.md when it has them, else from docs/README_decorator.md. They run in order in one namespace,
against the local OpenAI-compatible test upstream (OPENAI_BASE_URL), and every `# -> text` line must
appear in what they print, in order. The fast run uses a keyword policy with the default policy's
category names; the slow run uses the embedded default policy with the real detectors."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from support.openai_upstream import serve_upstream

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"<!-- example:decorator -->\s*```python\n(.*?)```\s*<!-- /example -->", re.DOTALL)

FAST_POLICY = r"""
policy: {id: readme-fast}
detectors:
  - name: pii
    type: keywords
    stages: [input, output]
    options:
      terms: {PERSON: [Ada Lovelace]}
      patterns: {EMAIL_ADDRESS: ['[\w.+-]+@[\w-]+\.[A-Za-z]{2,}']}
    rules: {"*": {action: pseudonymise}}
    output_rules: {"*": {action: flag}}
  - name: secrets
    type: keywords
    stages: [input, output]
    options: {patterns: {GITHUB_TOKEN: ['\bghp_[A-Za-z0-9]{36}\b']}}
    rules: {"*": {action: block}}
  - name: toxicity
    type: keywords
    stages: [output]
    options: {terms: {toxicity: [idiot]}}
    rules: {"*": {action: block}}
access:
  roles:
    local: {restore: ["*"]}
    user: {restore: ["*"]}
"""


def examples() -> tuple[Path, list[str]]:
    for path in (ROOT / "README.md", ROOT / "docs" / "README_decorator.md"):
        if path.exists():
            blocks = BLOCK.findall(path.read_text(encoding="utf-8"))
            if blocks:
                return path, blocks
    raise AssertionError("no decorator examples found in README.md or docs/README_decorator.md")


def run_examples(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path, blocks = examples()
    assert len(blocks) >= 3
    code = "\n".join(blocks)
    assert "@g.guard" in code and "wrap_openai" in code
    expected = [m.group(1).rstrip() for m in re.finditer(r"^# -> (.*)$", code, re.MULTILINE)]
    monkeypatch.setenv("TRUSTWALL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.delenv("OPENAI_ORG_ID", raising=False)
    out = io.StringIO()
    with serve_upstream() as (url, log), contextlib.redirect_stdout(out):
        monkeypatch.setenv("OPENAI_BASE_URL", url)
        namespace: dict[str, object] = {"__name__": "readme_example"}
        exec(compile(code, str(path), "exec"), namespace)  # noqa: S102 - our own README
    printed = [line.rstrip() for line in out.getvalue().splitlines()]
    pos = 0
    for want in expected:
        while pos < len(printed) and printed[pos] != want:
            pos += 1
        assert pos < len(printed), f"README promised {want!r}; printed:\n" + "\n".join(printed)
        pos += 1
    # the upstream saw pseudonyms only
    assert log and all("Ada Lovelace" not in str(body["messages"]) for body in log)
    assert (tmp_path / "data" / "audit.sqlite3").exists()


def test_readme_examples_run_with_a_keyword_policy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    policy = tmp_path / "fast.yaml"
    policy.write_text(FAST_POLICY)
    monkeypatch.setenv("TRUSTWALL_POLICY", str(policy))
    run_examples(monkeypatch, tmp_path)


@pytest.mark.slow
def test_readme_examples_run_with_the_default_policy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TRUSTWALL_POLICY", raising=False)
    run_examples(monkeypatch, tmp_path)
