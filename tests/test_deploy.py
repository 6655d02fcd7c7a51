"""The deployment files: redis.conf runs as it says; the compose file points at what exists.

docker-compose.yml itself cannot run here (no Docker engine); these checks keep it
from going stale against the code.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import redis
import yaml

from jobgate.client import load_profile
from scripts import devstack

ROOT = Path(__file__).resolve().parents[1]


def test_redis_conf_keeps_every_write_and_never_evicts(tmp_path: Path) -> None:
    server = devstack.RedisServer(tmp_path, config=ROOT / "deploy" / "redis.conf").start()
    try:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert client.config_get("stream-node-max-bytes") == {"stream-node-max-bytes": "1024"}
        client.set("k", "v")
        client.close()
    finally:
        server.stop()
    assert any(tmp_path.rglob("*.aof")), "no append-only file was written"


def test_compose_services_use_real_entry_points_and_files() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"redis", "s3", "worker", "flower"}
    # A service that exits (a crash, a lost Redis) comes back by itself.
    assert {s.get("restart") for s in services.values()} == {"unless-stopped"}
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert services["worker"]["command"][:2] == ["jobgate", "worker"]
    assert "jobgate" in scripts
    profile_mount = services["worker"]["volumes"][0].split(":")
    assert services["worker"]["command"][3] == profile_mount[1]
    profile = load_profile(str(ROOT / profile_mount[0]))  # a valid profile, with storage
    assert profile.storage is not None
    assert profile.storage.endpoint_url == "http://s3:8333"
    assert services["flower"]["command"][:3] == ["celery", "-A", "jobgate.workers.app"]
    assert "--appendonly" in services["redis"]["command"]
    assert "-s3.config=/home/weed/s3.json" in services["s3"]["command"][0]
    for service in ("worker", "s3"):
        dockerfile = (ROOT / services[service]["build"]["dockerfile"]).read_text()
        for line in dockerfile.splitlines():
            if line.startswith("COPY "):
                for source in line.split()[1:-1]:
                    assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
