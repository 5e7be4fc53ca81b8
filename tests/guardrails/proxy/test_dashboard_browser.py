"""The audit dashboard in a real browser: Debian's chromium (installed by `make browser`, which `make test`
runs) driven by Playwright, against a running proxy with a real SQLite audit log. The figures the page
shows must equal those computed from the export; a screenshot is kept under benchmarks/out/."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from guardrails.keys import SQLiteKeyStore
from guardrails.proxy import create_app
from guardrails.ratelimit import MemoryRateLimiter
from guardrails.runtime import build_runtime
from guardrails.settings import Settings

from .proxy_helpers import ServerThread
from .test_proxy_experiments import _client, _kind, _policy
from .test_proxy_experiments import ups as ups  # noqa: F401 - the upstreams fixture

CHROMIUM = Path("/usr/bin/chromium")
SHOT = Path(__file__).resolve().parents[3] / "benchmarks" / "out" / "dashboard.png"


@pytest.fixture
def proxy_with_log(ups, tmp_path: Path):  # noqa: F811
    settings = Settings(data_dir=tmp_path, hash_key="k")
    runtime = build_runtime(settings, policy=_policy(ups), audit=True)
    keys = SQLiteKeyStore(tmp_path / "keys.sqlite3")
    _, admin = keys.create("admin")
    users = [keys.create("user")[1] for _ in range(12)]
    server = ServerThread(create_app(runtime, keys=keys, limiter=MemoryRateLimiter(), key_cache_ttl_s=0)).start()
    n = 0
    for i, key in enumerate(users):
        client = _client(server.url, key)
        for j in range(5):
            text, extra = _kind(i * 5 + j)
            model = "gpt-ab" if j < 4 else "gpt-4o"
            try:
                client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}],
                                               extra_body=extra or None)
            except openai.APIStatusError:
                pass
            n += 1
        client.close()
    deadline = time.monotonic() + 30
    headers = {"authorization": f"Bearer {admin}"}
    while True:
        lines = [json.loads(x) for x in httpx.get(server.url + "/v1/audit/export", headers=headers).text.splitlines()
                 if x.strip()]
        if len(lines) >= n or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(lines) == n
    yield server, admin, users[0], lines
    server.stop()
    asyncio.run(runtime.aclose())


def test_dashboard_needs_an_admin_key_and_shows_no_data_otherwise(proxy_with_log) -> None:
    server, admin, user, lines = proxy_with_log
    anon = httpx.get(server.url + "/dashboard")
    assert anon.status_code == 401
    assert "sign in" in anon.text and "gpt-ab" not in anon.text and "key:" not in anon.text
    denied = httpx.get(server.url + "/dashboard", headers={"authorization": f"Bearer {user}"})
    assert denied.status_code == 403 and "gpt-ab" not in denied.text and "key:" not in denied.text
    for path in ("/dashboard/data", "/dashboard/export?format=csv"):
        r = httpx.get(server.url + path, headers={"authorization": f"Bearer {user}"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "admin_only"
        assert httpx.get(server.url + path).status_code == 401
    bad_cookie = httpx.get(server.url + "/dashboard", cookies={"trustwall_dashboard_key": "tw-000000000000.nope-nope-nope-nope-nope"})
    assert bad_cookie.status_code == 401
    ok = httpx.get(server.url + "/dashboard", headers={"authorization": f"Bearer {admin}"})
    assert ok.status_code == 200 and "gpt-ab" in ok.text


@pytest.mark.slow
def test_dashboard_in_chromium_shows_the_exports_figures(proxy_with_log) -> None:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "Debian's chromium is missing: run `make browser` (make test does)"
    server, admin, user, lines = proxy_with_log
    actions = Counter(x["final"] for x in lines)
    models = Counter(x["model"] for x in lines)
    variants = Counter(x["experiment"]["variant"] for x in lines if x.get("experiment"))
    blocked_by_variant = Counter(x["experiment"]["variant"] for x in lines if x.get("experiment") and x["final"] == "block")
    categories = Counter(c for x in lines for c in x["categories"])

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            # sign in through the page's form (the key becomes an HttpOnly cookie scoped to /dashboard)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            resp = page.goto(server.url + "/dashboard")
            assert resp is not None and resp.status == 401
            assert page.locator("[data-fig]").count() == 0
            page.fill("input[name=key]", admin)
            page.click("button")
            page.wait_for_selector("body[data-ready='1']", timeout=20_000)  # the packaged script ran

            def fig(name: str, **attrs: str) -> list[str]:
                sel = f"[data-fig='{name}']" + "".join(f"[data-{k}='{v}']" for k, v in attrs.items())
                return [t.strip() for t in page.locator(sel).all_text_contents()]

            assert fig("total") == [str(len(lines))]
            for a in ("allow", "flag", "redact", "route", "block"):
                assert fig("action", key=a) == [str(actions.get(a, 0))], a
            for m, n in models.items():
                assert fig("model-calls", key=m) == [str(n)], m
            for v, n in variants.items():
                assert fig("exp-calls", exp="ab", key=v) == [str(n)], v
                cell = page.locator(f"[data-fig='exp-final_block'][data-exp='ab'][data-key='{v}']")
                assert cell.get_attribute("data-count") == str(blocked_by_variant.get(v, 0))
            for c, n in categories.most_common(10):
                assert fig("category", key=c) == [str(n)], c
            assert fig("chain-ok") == ["intact"]
            assert page.locator("#actions-chart rect").count() > 0
            assert page.locator("section.experiment svg rect").count() >= 2

            # the export links carry the filters and serve the same records (cookie auth)
            href = page.locator("a", has_text="blocked calls (csv)").get_attribute("href")
            assert href is not None and "action=block" in href and "format=csv" in href
            csv_text = page.request.get(server.url + href).text()
            assert len(csv_text.strip().splitlines()) - 1 == actions.get("block", 0)

            # the packaged script sorts tables
            head = page.locator("#by-model th", has_text="calls")
            head.click()
            assert page.locator("#by-model tbody tr").first.locator("td").nth(1).inner_text() == str(max(models.values()))
            head.click()
            assert page.locator("#by-model tbody tr").first.locator("td").nth(1).inner_text() == str(min(models.values()))

            SHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOT), full_page=True)
            assert SHOT.stat().st_size > 10_000
        finally:
            browser.close()


def _data(server: Any, key: str) -> dict[str, Any]:
    return httpx.get(server.url + "/dashboard/data", headers={"authorization": f"Bearer {key}"}).json()


def test_dashboard_data_equals_the_export(proxy_with_log) -> None:
    server, admin, _, lines = proxy_with_log
    data = _data(server, admin)
    assert data["total"] == len(lines)
    assert data["actions"]["block"] == sum(1 for x in lines if x["final"] == "block")
    exp = data["experiments"][0]
    assert exp["experiment"] == "ab"
    assert sum(v["calls"] for v in exp["variants"]) == sum(1 for x in lines if x.get("experiment"))
