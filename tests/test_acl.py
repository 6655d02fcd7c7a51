"""Tenant isolation with Redis ACLs: two tenants on one redis-server whose only users are
those `jobgate acl` generates (default user off). Each tenant's users reach nothing of
the other's; a viewer reads but never enqueues; and a whole run (worker, client, Flower)
on the minimal users leaves ACL LOG empty, which checks the generated rules against what
really runs."""

from __future__ import annotations

import base64
import os
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from jobgate.client import Gateway, JobSpec, JobStatus, acl, routing
from jobgate.client.errors import ClusterNotServedWarning, PermissionDeniedError
from jobgate.client.keys import Keys
from scripts import devstack
from tests.support.acl import AclRedis, AclUser, refused
from tests.support.cli import JOBGATE
from tests.support.waiting import TIMEOUT_S, gated, wait_for
from tests.support.workers import ProfileFactory, wait_for_task_events

A, B = "tenant-a", "tenant-b"
CLUSTER = "local"


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclRedis]:
    server = AclRedis(tmp_path_factory.mktemp("acl-redis"), [A, B], [CLUSTER]).start()
    yield server
    server.stop()


@pytest.fixture
def services(tmp_path: Path) -> Iterator[list[devstack.Service]]:
    """Workers and Flowers a test starts, killed at its end (by PID)."""
    started: list[devstack.Service] = []
    yield started
    for service in started:
        service.kill()


def _worker(
    services: list[devstack.Service], user: AclUser, profile: Path, log_dir: Path
) -> devstack.Worker:
    worker = devstack.Worker(log_dir, user.url, [str(profile)], tenant=user.tenant,
                             name=f"worker-{user.tenant}")  # fmt: skip
    services.append(worker)
    return worker.start()


def _gateway(user: AclUser, tenant: str | None = None) -> Gateway:
    return Gateway(user.url, tenant=tenant or user.tenant, owner=user.role)


def _denied_commands(acl_redis: AclRedis) -> list[str]:
    return [f"{e['username']}: {e['reason']} {e['object']} ({e['context']})"
            for e in acl_redis.denials()]  # fmt: skip


def test_no_default_user_and_the_aclfile_loads(acl_redis: AclRedis) -> None:
    with (
        redis.Redis(port=acl_redis.server.port, socket_timeout=5) as anonymous,
        pytest.raises(redis.exceptions.AuthenticationError),
    ):
        anonymous.ping()
    with acl_redis.admin() as admin:
        users = admin.acl_users()
        default = admin.acl_getuser("default")
    assert {f"{t}-{r}" for t in (A, B) for r in acl.ROLES} <= set(users)
    assert "off" in default["flags"]


def test_a_submitter_reaches_nothing_of_tenant_b(
    acl_redis: AclRedis, make_profile: ProfileFactory
) -> None:
    # no worker serves B here: the job waits in B's queue
    with _gateway(acl_redis.user(B, "submitter")) as b, pytest.warns(ClusterNotServedWarning):
        job = b.submit(JobSpec(name="b-job", command="true"), CLUSTER)
    kb = Keys(B)
    theirs = acl_redis.user(A, "submitter")
    queue = f"{kb.prefix}jobgate.{CLUSTER}"
    with acl_redis.admin() as admin:
        queued = admin.llen(queue)
    assert queued >= 1  # B's message is there to be taken
    attempts = {
        "GET": lambda c: c.get(f"{kb.prefix}celery-task-meta-{job.result_id}"),
        "HGETALL": lambda c: c.hgetall(kb.job(job.id)),
        "XREAD": lambda c: c.xread({kb.events(job.id): "0"}),
        "ZRANGE": lambda c: c.zrange(kb.index_all, 0, -1),
        "LPUSH": lambda c: c.lpush(queue, "{}"),
        "PUBLISH": lambda c: c.publish(kb.channel, "{}"),
        "SUBSCRIBE": lambda c: c.execute_command("SUBSCRIBE", kb.channel),
        "PSUBSCRIBE": lambda c: c.execute_command(
            "PSUBSCRIBE", acl.fanout_topic(B, "celeryev/*", 0)
        ),
        "PSUBSCRIBE *": lambda c: c.execute_command("PSUBSCRIBE", "jobgate:*"),
        "KEYS": lambda c: c.keys("*"),
        "SCAN": lambda c: c.scan(0),
        "FLUSHALL": lambda c: c.flushall(),
        "CONFIG": lambda c: c.config_get("*"),
        "EVAL": lambda c: c.eval("return redis.call('HGETALL', KEYS[1])", 1, kb.job(job.id)),
    }
    allowed = []
    for name, attempt in attempts.items():
        with theirs.client() as client:
            if not refused(lambda a=attempt, c=client: a(c)):
                allowed.append(name)
    assert allowed == []
    with acl_redis.admin() as admin:
        assert admin.llen(queue) == queued  # nothing was pushed or taken
    # Through jobgate: A's user naming tenant B is refused with a clear error.
    with _gateway(theirs, tenant=B) as trespasser:
        with pytest.raises(PermissionDeniedError, match=f"ACL user '{theirs.name}'"):
            trespasser.list()
        with pytest.raises(PermissionDeniedError):
            trespasser.job(job.id)


def test_a_worker_consumes_only_its_tenants_queues_of_its_clusters(acl_redis: AclRedis) -> None:
    worker = acl_redis.user(A, "worker")
    ka, kb = Keys(A), Keys(B)
    with acl_redis.admin() as admin:
        admin.lpush(f"{ka.prefix}jobgate.{CLUSTER}", "mine")
        admin.lpush(f"{ka.prefix}jobgate.other", "other cluster")
        theirs = admin.lpush(f"{kb.prefix}jobgate.{CLUSTER}", "tenant b")
    with worker.client() as client:
        assert client.brpop([f"{ka.prefix}jobgate.{CLUSTER}"], 1) is not None
        for queue in (f"{kb.prefix}jobgate.{CLUSTER}", f"{ka.prefix}jobgate.other",
                      f"{kb.prefix}jobgate.{CLUSTER}.poll"):  # fmt: skip
            assert refused(lambda q=queue: client.brpop([q], 1)), queue
            assert refused(lambda q=queue: client.rpop(q)), queue
        # it may still put a message back on any queue of its own tenant (kombu's restore)
        assert client.rpush(f"{ka.prefix}jobgate.other", "restored") == 2
        assert refused(lambda: client.rpush(f"{kb.prefix}jobgate.{CLUSTER}", "x"))
    with acl_redis.admin() as admin:
        assert admin.llen(f"{kb.prefix}jobgate.{CLUSTER}") == theirs  # none taken or added
        admin.delete(f"{ka.prefix}jobgate.other")
        admin.lrem(f"{kb.prefix}jobgate.{CLUSTER}", 1, "tenant b")


def test_a_viewer_lists_and_waits_but_cannot_submit_cancel_or_read_secrets(
    acl_redis: AclRedis, make_profile: ProfileFactory, services: list[devstack.Service],
    tmp_path: Path,
) -> None:  # fmt: skip
    _worker(services, acl_redis.user(A, "worker"), make_profile(CLUSTER), tmp_path / "logs")
    gate = tmp_path / "gate"
    viewer = acl_redis.user(A, "viewer")
    with _gateway(acl_redis.user(A, "submitter")) as submitter, _gateway(viewer) as view:
        job = submitter.submit(
            JobSpec(name="watched", command=gated("echo done", gate), env={"API_TOKEN": "s3"}),
            CLUSTER,
        )
        wait_for(lambda: job.status() is JobStatus.RUNNING, TIMEOUT_S, "job running")
        assert [r.id for r in view.list(name="watched") if r.id == job.id] == [job.id]
        with viewer.client() as raw:
            assert refused(lambda: raw.hgetall(Keys(A).secrets(job.id)))
        before = len(view.list(limit=1000))
        with pytest.raises(PermissionDeniedError, match=r"refused JobStore\.create") as e:
            view.submit(JobSpec(name="nope", command="true"), CLUSTER)
        assert "NOPERM" not in str(e.value)
        assert viewer.password not in str(e.value)
        assert len(view.list(limit=1000)) == before  # nothing was recorded
        watched = view.job(job.id)
        with pytest.raises(PermissionDeniedError, match=f"ACL user '{viewer.name}'"):
            watched.cancel(timeout_s=10)
        with pytest.raises(PermissionDeniedError):
            list(watched.logs())
        with pytest.raises(PermissionDeniedError):  # at once: a refusal is no outage to ride
            list(watched.logs(follow=True, outage_s=600))
        gate.touch()
        assert watched.wait(timeout_s=TIMEOUT_S).status is JobStatus.SUCCEEDED
        assert "".join(job.logs()) == "done\n"
    cli = subprocess.run(
        [JOBGATE, "--url", viewer.url, "--tenant", A, "submit", CLUSTER, "true"],
        env={k: v for k, v in os.environ.items() if not k.startswith("JOBGATE_")},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert cli.returncode == 1
    assert cli.stderr.startswith("jobgate: Redis at ")
    assert "Traceback" not in cli.stderr
    assert f"ACL user '{viewer.name}' lacks the permission" in cli.stderr
    assert viewer.password not in cli.stderr


def _flower(services: list[devstack.Service], user: AclUser, log_dir: Path) -> devstack.Flower:
    flower = devstack.Flower(log_dir, user.url, tenant=user.tenant, basic_auth="ops:pw")
    services.append(flower)
    return flower.start()


def test_a_whole_run_on_the_minimal_users_is_never_refused(
    acl_redis: AclRedis, make_profile: ProfileFactory, services: list[devstack.Service],
    tmp_path: Path,
) -> None:  # fmt: skip
    """Two tenants' workers, clients and one Flower at once; ACL LOG stays empty."""
    acl_redis.forget_denials()
    profile = make_profile(CLUSTER)
    workers = {t: _worker(services, acl_redis.user(t, "worker"), profile, tmp_path / t)
               for t in (A, B)}  # fmt: skip
    flower = _flower(services, acl_redis.user(A, "flower"), tmp_path / "flower")
    wait_for_task_events(workers[A])
    outcomes: dict[str, Any] = {}

    def run(tenant: str) -> None:
        try:
            use(tenant)
        except Exception as e:
            outcomes[tenant] = repr(e)

    def use(tenant: str) -> None:
        with _gateway(acl_redis.user(tenant, "submitter")) as gw:
            job = gw.submit(JobSpec(name=f"{tenant}-job", command=f"echo {tenant}"), CLUSTER)
            sleeper = gw.submit(JobSpec(name="sleeper", command="sleep 300"), CLUSTER)
            wait_for(lambda: sleeper.status(fresh=True) is JobStatus.RUNNING, TIMEOUT_S,
                     f"{tenant}'s sleeper running")  # fmt: skip
            outcomes[tenant] = {
                "status": job.wait(timeout_s=TIMEOUT_S).status,
                "logs": "".join(job.logs()),
                "cancelled": sleeper.cancel().status,
                "mine": {job.id, sleeper.id},
                "listed": {r.id for r in gw.list(limit=1000)},
                "clusters": sorted(gw.clusters()),
            }
        with _gateway(acl_redis.user(tenant, "viewer")) as view:
            outcomes[tenant]["viewed"] = view.job(job.id).wait(timeout_s=TIMEOUT_S).status

    threads = [threading.Thread(target=run, args=(t,)) for t in (A, B)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=3 * TIMEOUT_S)
    assert _denied_commands(acl_redis) == []
    assert all(isinstance(outcomes.get(t), dict) for t in (A, B)), outcomes
    mine = {t: outcomes[t].pop("mine") for t in (A, B)}
    listed = {t: outcomes[t].pop("listed") for t in (A, B)}
    assert mine[A] <= listed[A]
    assert mine[B] <= listed[B]
    assert not listed[A] & listed[B]  # each lists its own tenant's jobs only
    for tenant in (A, B):
        assert outcomes[tenant] == {
            "status": JobStatus.SUCCEEDED,
            "logs": f"{tenant}\n",
            "cancelled": JobStatus.CANCELLED,
            "clusters": [CLUSTER],
            "viewed": JobStatus.SUCCEEDED,
        }

    def flower_saw() -> dict[str, Any] | None:
        tasks = flower.get_json("/api/tasks")
        names = {t["name"] for t in tasks.values()}
        wanted = {routing.DRAIN_SUBMITS, routing.CANCEL, routing.LOGS, routing.MONITOR}
        return tasks if wanted <= names else None

    wait_for(flower_saw, what="Flower to show tenant A's tasks")
    shown = flower.get_json("/api/workers?refresh=1")
    assert list(shown) == [workers[A].hostname]  # tenant A's worker only
    assert _denied_commands(acl_redis) == []


def _status(request: urllib.request.Request) -> int:
    """The HTTP status of a request, the response closed."""
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        e.close()
        return e.code


def test_flower_for_a_tenant_needs_its_password_but_metrics_do_not(
    acl_redis: AclRedis, services: list[devstack.Service], tmp_path: Path
) -> None:
    flower = _flower(services, acl_redis.user(B, "flower"), tmp_path / "flower")
    wrong = urllib.request.Request(f"{flower.http_url}/api/workers")
    wrong.add_header("Authorization", "Basic " + base64.b64encode(b"ops:wrong").decode())
    assert _status(urllib.request.Request(f"{flower.http_url}/api/workers")) == 401
    assert _status(wrong) == 401
    assert flower.get_json("/api/workers") == {}  # B's Flower; no worker of B runs
    for open_path in ("/healthcheck", "/metrics"):  # unauthenticated, as documented
        assert _status(urllib.request.Request(f"{flower.http_url}{open_path}")) == 200
    # Flower's user cannot enqueue a task: its send-task endpoint is refused by Redis
    with acl_redis.user(B, "flower").client() as raw:
        assert refused(lambda: raw.lpush(f"{Keys(B).prefix}jobgate.{CLUSTER}", "{}"))
        assert refused(lambda: raw.hgetall(Keys(B).job("0" * 26)))


def test_the_acl_command_prints_rules_with_the_password_hashed(tmp_path: Path) -> None:
    env = {**os.environ, "ROLE_PW": "sekret-pw"}
    out = subprocess.run(
        [JOBGATE, "acl", "--tenant", "team1", "--role", "worker", "--user", "w1",
         "--password-env", "ROLE_PW", "--clusters", "hpc,gpu", "--format", "aclfile"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert out.startswith("user w1 reset on #")
    assert "sekret-pw" not in out
    assert "~jobgate:team1:* " in out
    assert "&jobgate:team1:/0.celery.pidbox" in out
    assert "~jobgate:team1:jobgate.hpc.poll " in out
    assert "+brpop" in out
    setuser = subprocess.run(
        [JOBGATE, "acl", "--tenant", "team1", "--role", "viewer", "--user", "v1"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert setuser.stdout.startswith("ACL SETUSER v1 reset on '>CHANGE-ME'")
    assert "CHANGE-ME" in setuser.stderr
    bad = subprocess.run(
        [JOBGATE, "acl", "--tenant", "team1", "--role", "viewer", "--user", "v1",
         "--clusters", "hpc"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert bad.returncode == 1
    assert bad.stderr.startswith("jobgate: --clusters applies")


def test_the_setuser_lines_give_redis_cli_the_same_user_as_the_aclfile(
    acl_redis: AclRedis,
) -> None:
    loaded = acl_redis.user(A, "worker")
    env = {**os.environ, "WORKER_PW": loaded.password, "REDISCLI_AUTH": acl_redis.admin_password}
    lines = subprocess.run(
        [JOBGATE, "acl", "--tenant", A, "--role", "worker", "--user", "copy-of-worker",
         "--password-env", "WORKER_PW", "--clusters", CLUSTER],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    done = subprocess.run(
        ["redis-cli", "-p", str(acl_redis.server.port), "--user", "admin"],
        input=lines, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == "OK"
    with acl_redis.admin() as admin:
        copy, original = admin.acl_getuser("copy-of-worker"), admin.acl_getuser(loaded.name)
        admin.acl_deluser("copy-of-worker")
    assert copy == original
