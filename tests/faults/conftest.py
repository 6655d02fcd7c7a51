"""Each fault test gets a Redis of its own, which it may stop, crash and restart: the
`redis_url` here replaces the session's shared one, so `gateway`, `start_worker` and the
backend harnesses all talk to it. Its persistence is the test's to choose, by indirect
parametrization of `own_redis` ("none", "everysec", "always"; default "everysec")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts import devstack

PERSISTENCE = {
    "none": "save ''\nappendonly no\n",
    "everysec": "save ''\nappendonly yes\nappendfsync everysec\n",
    "always": "save ''\nappendonly yes\nappendfsync always\n",
}


@pytest.fixture
def own_redis(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[devstack.RedisServer]:
    persistence = getattr(request, "param", "everysec")
    directory = tmp_path / "own-redis"
    directory.mkdir()
    config = directory / "redis.conf"
    config.write_text(PERSISTENCE[persistence])
    server = devstack.RedisServer(directory, config=config).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(own_redis: devstack.RedisServer) -> str:
    return own_redis.url
