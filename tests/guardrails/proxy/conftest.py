"""Fixtures of the proxy tests. This directory is a package, so this conftest is `proxy.conftest` and
never shadows another directory's `conftest` module."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from .proxy_helpers import Proxy, ServerThread, make_policy, start_proxy
from .proxy_upstream import UpstreamLog, make_upstream_app


@pytest.fixture(scope="session")
def cloud() -> Iterator[tuple[ServerThread, UpstreamLog]]:
    app, log = make_upstream_app("cloud")
    s = ServerThread(app).start()
    yield s, log
    s.stop()


@pytest.fixture(scope="session")
def inhouse() -> Iterator[tuple[ServerThread, UpstreamLog]]:
    app, log = make_upstream_app("inhouse")
    s = ServerThread(app).start()
    yield s, log
    s.stop()


@pytest.fixture(scope="module")
def proxy(cloud, inhouse, tmp_path_factory) -> Iterator[Proxy]:
    policy = make_policy(cloud[0].url, inhouse[0].url)
    p = start_proxy(tmp_path_factory.mktemp("proxy"), policy)
    yield p
    p.server.stop()
    asyncio.run(p.runtime.aclose())


@pytest.fixture
def logs(cloud, inhouse):
    cloud[1].clear()
    inhouse[1].clear()
    return cloud[1], inhouse[1]
