"""Fixtures: a settings object in a temp data dir, and one fresh store per sink kind.

PostgreSQL tests use the server of this machine (127.0.0.1:5432, database `test`) with a unique schema
per test, dropped afterwards."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # audit_helpers, audit_tamper

from guardrails.audit import open_store
from guardrails.settings import Settings

PG_URL = os.environ.get("TRUSTWALL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


def pg_url() -> str:
    return f"{PG_URL}?schema=tw_audit_{os.getpid()}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    kind = getattr(request, "param", "sqlite")
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
    elif kind == "jsonl":
        yield f"jsonl:///{tmp_path / 'audit.jsonl'}"
    else:
        url = pg_url()
        yield url
        drop_pg(url)


def drop_pg(url: str) -> None:
    import psycopg

    from guardrails.audit.sql import _split_pg_url

    conninfo, schema = _split_pg_url(url)
    with psycopg.connect(conninfo, autocommit=True) as db:
        db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def make_store(settings: Settings, store_url: str) -> Iterator[Callable[..., object]]:
    opened: list[object] = []

    def _make(every: int = 10, url: str | None = None) -> object:
        s = open_store(settings, url or store_url, checkpoint_every=every)
        opened.append(s)
        return s

    yield _make
    for s in opened:
        try:
            s.close()  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - already closed
            pass

