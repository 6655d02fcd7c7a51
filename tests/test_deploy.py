"""The deployment files: redis.conf runs as it says; the compose file points at what exists.

docker-compose.yml itself cannot run here (no Docker engine); these checks keep it
from going stale against the code.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import redis
import yaml

from jobgate.client import acl, load_profile
from scripts import devstack

ROOT = Path(__file__).resolve().parents[1]


ACL_FILE = ROOT / "deploy" / "redis-users.acl"
#: deploy/redis-users.acl's users of tenant 'default', by role
DEPLOY_USERS = {
    "submitter": "jobgate-submitter",
    "worker": "jobgate-worker",
    "viewer": "jobgate-viewer",
    "flower": "jobgate-flower",
}


def _deploy_redis(tmp_path: Path) -> devstack.RedisServer:
    """deploy/redis.conf with deploy/redis-users.acl (its aclfile path is the installed
    one), logged in as the file's admin with its placeholder password."""
    return devstack.RedisServer(
        tmp_path,
        config=ROOT / "deploy" / "redis.conf",
        extra_args=("--aclfile", str(ACL_FILE)),
        auth=("jobgate-admin", "CHANGE-ME-ADMIN"),
    ).start()


def test_redis_conf_keeps_every_write_and_never_evicts(tmp_path: Path) -> None:
    server = _deploy_redis(tmp_path)
    try:
        client = server.client()
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert client.config_get("stream-node-max-bytes") == {"stream-node-max-bytes": "1024"}
        client.set("k", "v")
        client.close()
    finally:
        server.stop()
    assert any(tmp_path.rglob("*.aof")), "no append-only file was written"


def test_redis_conf_loads_the_acl_users_and_has_no_default_user(tmp_path: Path) -> None:
    conf = (ROOT / "deploy" / "redis.conf").read_text().splitlines()
    assert "aclfile /etc/jobgate/redis-users.acl" in conf
    assert not [line for line in conf if line.startswith(("requirepass", "user "))]
    server = _deploy_redis(tmp_path)
    try:
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(port=server.port, socket_timeout=5).ping()
        with server.client() as admin:
            assert "off" in admin.acl_getuser("default")["flags"]
            assert set(DEPLOY_USERS.values()) <= set(admin.acl_users())
        worker = redis.Redis(port=server.port, username="jobgate-worker",
                             password="CHANGE-ME-WORKER", socket_timeout=5)  # fmt: skip
        with worker, pytest.raises(redis.exceptions.NoPermissionError):
            worker.get("jobgate:other-tenant:idx:all")
    finally:
        server.stop()


def test_the_acl_example_is_what_jobgate_acl_prints() -> None:
    """Each user of deploy/redis-users.acl has the rules `jobgate acl` gives its role
    (regenerate the line with `jobgate acl --tenant default --role ROLE --user NAME
    --format aclfile` and put the CHANGE-ME-<ROLE> placeholder back)."""
    lines = {line.split()[1]: line for line in ACL_FILE.read_text().splitlines()
             if line.startswith("user ")}  # fmt: skip
    assert lines["default"] == "user default off"
    for role, name in DEPLOY_USERS.items():
        rules = acl.user_rules(name, acl.grant(role, "default"), None)
        placeholder = f">CHANGE-ME-{role.upper()}"
        expected = [placeholder if r == acl.PLACEHOLDER_PASSWORD else r for r in rules]
        assert lines[name] == acl.render(name, expected, "aclfile"), f"{name} is stale"


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
    redis_start = services["redis"]["command"][0]
    mounts = dict(v.split(":")[:2] for v in services["redis"]["volumes"] if v.startswith("./"))
    assert mounts == {"./deploy/redis.conf": "/etc/jobgate/redis.conf",
                      "./deploy/redis-users.acl": "/etc/jobgate/redis-users.acl"}  # fmt: skip
    assert "redis-server /etc/jobgate/redis.conf" in redis_start
    # Every client logs in as the tenant's user of its role, whose password is filled in
    for service, role in (("worker", "worker"), ("flower", "flower")):
        variable = f"REDIS_{role.upper()}_PASSWORD"
        url = f"redis://{DEPLOY_USERS[role]}:${{{variable}:?set {variable}}}@redis:6379/0"
        assert services[service]["environment"]["JOBGATE_URL"] == url
        assert f">CHANGE-ME-{role.upper()}/>$${variable}/" in redis_start
        assert variable in services["redis"]["environment"]
    assert (
        "jobgate-submitter:$REDIS_SUBMITTER_PASSWORD@" in (ROOT / "docker-compose.yml").read_text()
    )
    assert "-s3.config=/home/weed/s3.json" in services["s3"]["command"][0]
    for service in ("worker", "s3"):
        dockerfile = (ROOT / services[service]["build"]["dockerfile"]).read_text()
        for line in dockerfile.splitlines():
            if line.startswith("COPY "):
                for source in line.split()[1:-1]:
                    assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
