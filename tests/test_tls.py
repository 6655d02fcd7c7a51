"""TLS to Redis: a job runs end to end over ``rediss://`` (client, job store, broker,
worker, result backend, Flower) against a redis-server that serves TLS only; mutual TLS;
and each way TLS can fail is a BrokerTlsError (a BrokerUnavailableError) that says which.

The certificates come from a CA of the module's own (tests/support/tls.py). In this
module `redis_url` is the TLS server's, so the conftest fixtures (`gateway`,
`start_worker`) talk TLS; JOBGATE_TLS_CA names the test CA unless a test says otherwise.
"""

from __future__ import annotations

import os
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from celery.result import AsyncResult

from jobgate.client import Gateway, JobSpec, JobStatus, routing
from jobgate.client.celeryconf import celery_config, make_celery
from jobgate.client.connection import PROFILES_ENV, TENANT_ENV, URL_ENV, broker_errors, check_url
from jobgate.client.errors import BrokerTlsError, BrokerUnavailableError, ConfigurationError
from jobgate.client.tls import CA_ENV, CERT_ENV, KEY_ENV, split_tls
from scripts import devstack
from tests.support.cli import JOBGATE
from tests.support.tls import (
    Authority,
    CeleryWorker,
    JobgateFlower,
    Pair,
    TlsRedisServer,
    TlsSentinel,
    needs_openssl,
)
from tests.support.waiting import TIMEOUT_S, wait_for
from tests.support.workers import ProfileFactory, WorkerFactory, wait_for_task_events

VERIFY_FAILED = "certificate verify failed"


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    needs_openssl()
    return Authority(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def client_pair(authority: Authority) -> Pair:
    return authority.issue("jobgate-client", dns=(), ips=(), client=True)


@contextmanager
def _serve(
    directory: Path, authority: Authority, server: Pair, **options: Any
) -> Iterator[TlsRedisServer]:
    redis_tls = TlsRedisServer(directory, authority, server, **options).start()
    try:
        yield redis_tls
    finally:
        redis_tls.stop()


@pytest.fixture(scope="module")
def tls_redis(
    tmp_path_factory: pytest.TempPathFactory, authority: Authority
) -> Iterator[TlsRedisServer]:
    """TLS only, a certificate for 127.0.0.1 and localhost; no client certificate asked."""
    with _serve(tmp_path_factory.mktemp("redis-tls"), authority, authority.issue("server")) as s:
        yield s


@pytest.fixture(scope="module")
def mtls_redis(
    tmp_path_factory: pytest.TempPathFactory, authority: Authority, client_pair: Pair
) -> Iterator[TlsRedisServer]:
    """TLS only, and only for clients with a certificate the test CA signed."""
    with _serve(
        tmp_path_factory.mktemp("redis-mtls"), authority, authority.issue("server-m"),
        client_auth=True, probe_client=client_pair,
    ) as server:  # fmt: skip
        yield server


@pytest.fixture
def redis_url(tls_redis: TlsRedisServer) -> str:
    """The conftest fixtures' Redis, in this module: the TLS server."""
    return tls_redis.url


@pytest.fixture(autouse=True)
def trust_test_ca(monkeypatch: pytest.MonkeyPatch, authority: Authority) -> None:
    """JOBGATE_TLS_CA names the test CA, here and in every process a test starts."""
    for name in (CA_ENV, CERT_ENV, KEY_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(CA_ENV, str(authority.cert))


def _store_and_broker(url: str, tenant: str) -> None:
    """Touch each connection a client makes: the job store, the broker (a publish) and
    the result backend; each failure as a jobgate error."""
    with Gateway(url, tenant=tenant) as gateway:
        gateway.list()
        app = make_celery(url, tenant, main="tls-test")
        try:
            with broker_errors(url):
                app.send_task("jobgate.nothing", queue="jobgate.tls-test", ignore_result=True)
            with broker_errors(url):
                app.backend.client.ping()
        finally:
            app.close()


def test_a_job_runs_end_to_end_over_tls_with_worker_result_backend_and_flower(
    tls_redis: TlsRedisServer,
    gateway: Gateway,
    make_profile: ProfileFactory,
    start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    assert gateway.url.startswith("rediss://")
    assert tls_redis.client().config_get("port") == {"port": "0"}  # no plain-text port
    flower = JobgateFlower(
        tmp_path / "flower", gateway.url, tenant=gateway.tenant, basic_auth="ops:pw"
    ).start()
    try:
        worker = start_worker(make_profile())
        wait_for_task_events(worker)
        job = gateway.submit(JobSpec(name="over-tls", command="echo hello over tls"), "local")
        record = job.wait(timeout_s=TIMEOUT_S)
        assert record.status is JobStatus.SUCCEEDED
        assert "".join(job.logs()) == "hello over tls\n"
        final = AsyncResult(record.result_id, app=gateway.celery).get(timeout=10)
        assert (final["id"], final["status"]) == (job.id, "SUCCEEDED")

        def seen() -> bool:
            tasks: dict[str, dict[str, Any]] = flower.get_json("/api/tasks")
            return any(
                t["name"] == routing.DRAIN_SUBMITS and t["state"] == "SUCCESS"
                for t in tasks.values()
            )

        wait_for(seen, what="Flower (over TLS) to show the drain_submits task as done")
        workers = flower.get_json("/api/workers?refresh=1")  # broadcast over the broker
        assert any(name.startswith("worker0-") for name in workers)
        # what kombu logs ("defaulting to insecure SSL") for a connection without TLS settings
        for log in (worker.log_text(), flower.log_text()):
            assert "insecure" not in log.lower()
    finally:
        flower.stop()


def test_a_worker_started_by_celery_itself_verifies_the_server_too(
    tls_redis: TlsRedisServer, tenant: str, make_profile: ProfileFactory,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:  # fmt: skip
    """The consumer of `celery -A jobgate.workers.app worker` refuses a server signed by a
    CA it was not told to trust; kombu alone would consume from it unverified."""
    monkeypatch.setenv(CA_ENV, str(Authority(tmp_path / "other", "other-ca").cert))
    env = {URL_ENV: tls_redis.url, TENANT_ENV: tenant, PROFILES_ENV: str(make_profile())}
    worker = CeleryWorker(tmp_path / "logs").start(env)
    try:
        refused = "consumer: Cannot connect to rediss://"

        def consumer_refused() -> list[str]:
            return [line for line in worker.log_text().splitlines() if refused in line]

        lines = wait_for(consumer_refused, what="the worker's consumer to refuse the server")
        assert VERIFY_FAILED in lines[0]
        assert worker.running()  # it keeps trying, as for a Redis that is down
    finally:
        worker.kill()


def test_rediss_verifies_against_the_system_cas_without_any_parameter(
    tls_redis: TlsRedisServer, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No CA given: every connection requires a verified certificate (the system's CAs,
    which do not know the test CA), not kombu's unverified default or Celery's ValueError."""
    monkeypatch.delenv(CA_ENV)
    url = tls_redis.url
    _, tls = split_tls(url)
    assert tls is not None
    assert (tls.cert_reqs, tls.check_hostname, tls.ca_certs) == (ssl.CERT_REQUIRED, True, None)
    config = celery_config(url, tenant)
    for setting in ("broker_use_ssl", "redis_backend_use_ssl"):
        assert config[setting]["ssl_cert_reqs"] is ssl.CERT_REQUIRED
    with pytest.raises(BrokerTlsError, match=VERIFY_FAILED) as failed:
        Gateway(url, tenant=tenant).list()
    assert "not signed by a CA this client trusts" in str(failed.value)
    assert CA_ENV in str(failed.value)
    # the broker and the result backend refuse the server too: kombu alone would have
    # published without checking the certificate, and Celery raised a bare ValueError
    app = make_celery(url, tenant, main="tls-test")
    try:
        with pytest.raises(BrokerTlsError, match=VERIFY_FAILED), broker_errors(url):
            app.send_task("jobgate.nothing", queue="jobgate.tls-test", ignore_result=True)
        with pytest.raises(BrokerTlsError, match=VERIFY_FAILED), broker_errors(url):
            app.backend.client.ping()
    finally:
        app.close()


def test_the_ca_can_be_a_url_parameter_which_wins_over_the_variable(
    tls_redis: TlsRedisServer, tenant: str, authority: Authority,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:  # fmt: skip
    monkeypatch.setenv(CA_ENV, str(Authority(tmp_path / "other", "other-ca").cert))
    url = f"{tls_redis.url}?ssl_cert_reqs=required&ssl_ca_certs={authority.cert}"
    _store_and_broker(url, tenant)
    assert celery_config(url, tenant)["broker_url"] == tls_redis.url


def test_mutual_tls_with_a_client_certificate_runs_a_job(
    mtls_redis: TlsRedisServer,
    client_pair: Pair,
    tenant: str,
    make_profile: ProfileFactory,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv(CERT_ENV, str(client_pair.cert))
    monkeypatch.setenv(KEY_ENV, str(client_pair.key))
    worker = devstack.Worker(
        tmp_path / "logs", mtls_redis.url, [str(make_profile())], tenant=tenant, name="mtls"
    ).start()
    try:
        with Gateway(mtls_redis.url, tenant=tenant) as gateway:
            job = gateway.submit(JobSpec(name="mtls", command="echo mutual"), "local")
            assert job.wait(timeout_s=TIMEOUT_S).status is JobStatus.SUCCEEDED
            assert "".join(job.logs()) == "mutual\n"
    finally:
        worker.kill()


def test_through_sentinels_over_tls_a_job_runs_end_to_end(
    authority: Authority, tenant: str, make_profile: ProfileFactory, tmp_path: Path
) -> None:
    """A sentinel and a master that both speak TLS only; JOBGATE_TLS_CA makes the
    client, the worker, the broker and the result backend reach both over TLS."""
    server = authority.issue("server-s")
    with _serve(tmp_path / "master", authority, server) as master:
        sentinel = TlsSentinel(tmp_path / "sentinel", authority, server, master).start()
        try:
            url = sentinel.url
            assert (
                celery_config(url, tenant)["broker_transport_options"]["sentinel_kwargs"][
                    "ssl_cert_reqs"
                ]
                is ssl.CERT_REQUIRED
            )
            worker = devstack.Worker(
                tmp_path / "logs", url, [str(make_profile())], tenant=tenant, name="sentinel"
            ).start()
            try:
                with Gateway(url, tenant=tenant) as gateway:
                    job = gateway.submit(JobSpec(name="s", command="echo via sentinels"), "local")
                    record = job.wait(timeout_s=TIMEOUT_S)
                    assert record.status is JobStatus.SUCCEEDED
                    assert "".join(job.logs()) == "via sentinels\n"
                    final = AsyncResult(record.result_id, app=gateway.celery).get(timeout=10)
                    assert final["status"] == "SUCCEEDED"
            finally:
                worker.kill()
            # the CA may be a parameter of the sentinel URL, as of a rediss:// URL
            with_ca = f"{url}&ssl_ca_certs={authority.cert}"
            os.environ.pop(CA_ENV)
            _store_and_broker(with_ca, tenant)
            with pytest.raises(BrokerTlsError, match=VERIFY_FAILED):
                _store_and_broker(f"{url}&ssl_cert_reqs=required", tenant)
        finally:
            sentinel.stop()


def test_mutual_tls_without_a_client_certificate_says_so(
    mtls_redis: TlsRedisServer, tenant: str
) -> None:
    with pytest.raises(BrokerTlsError, match="client certificate") as failed:
        _store_and_broker(mtls_redis.url, tenant)
    assert CERT_ENV in str(failed.value)


def test_a_wrong_ca_says_the_certificate_is_not_signed_by_a_trusted_ca(
    tls_redis: TlsRedisServer, tenant: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(CA_ENV, str(Authority(tmp_path / "other", "other-ca").cert))
    with pytest.raises(BrokerTlsError, match="not signed by a CA this client trusts"):
        _store_and_broker(tls_redis.url, tenant)


def test_a_plain_text_server_says_it_does_not_speak_tls(
    redis_server: devstack.RedisServer, tenant: str
) -> None:
    """A plain-text Redis never answers a TLS handshake: given up on within the connect
    timeout (5 s), not the read timeout (30 s)."""
    with pytest.raises(BrokerTlsError, match="may not speak TLS") as failed:
        _store_and_broker(f"rediss://127.0.0.1:{redis_server.port}/0", tenant)
    assert "redis://" in str(failed.value)


def test_a_plain_text_url_to_a_tls_server_hints_at_rediss(
    tls_redis: TlsRedisServer, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CA_ENV)
    with pytest.raises(BrokerUnavailableError, match="use rediss://"):
        Gateway(f"redis://127.0.0.1:{tls_redis.port}/0", tenant=tenant).list()


def test_a_certificate_for_another_name_says_so(
    tmp_path: Path, authority: Authority, tenant: str
) -> None:
    """The certificate names localhost only; the client connects to 127.0.0.1."""
    server = authority.issue("localhost-only", dns=("localhost",), ips=())
    with _serve(tmp_path / "misnamed", authority, server) as redis_tls:
        with pytest.raises(BrokerTlsError, match="for another name") as failed:
            _store_and_broker(redis_tls.url, tenant)
        assert VERIFY_FAILED in str(failed.value)
        assert "127.0.0.1" in str(failed.value)


def test_an_expired_certificate_says_so(tmp_path: Path, authority: Authority, tenant: str) -> None:
    server = authority.issue("expired", expired=True)
    with _serve(tmp_path / "expired", authority, server) as redis_tls:
        with pytest.raises(BrokerTlsError, match="has expired") as failed:
            _store_and_broker(redis_tls.url, tenant)
        assert VERIFY_FAILED in str(failed.value)


def test_tls_errors_name_no_password(
    tls_redis: TlsRedisServer, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CA_ENV)
    url = f"rediss://:s3cr3t-pw@127.0.0.1:{tls_redis.port}/0"
    with pytest.raises(BrokerTlsError) as failed:
        _store_and_broker(url, tenant)
    assert "s3cr3t-pw" not in str(failed.value)
    assert ":***@127.0.0.1" in str(failed.value)


def test_the_command_prints_tls_failures_as_one_line(
    tls_redis: TlsRedisServer, tenant: str, make_profile: ProfileFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """`jobgate list`, `jobgate worker` and `jobgate flower` with an untrusted server:
    exit status 1 and the reason, no traceback, no worker retrying forever."""
    monkeypatch.delenv(CA_ENV)
    for args in (["list"], ["worker", "--profile", str(make_profile())], ["flower"]):
        run = subprocess.run(
            [JOBGATE, *args, "--url", tls_redis.url, "--tenant", tenant],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert run.returncode == 1, (args, run.stderr)
        assert "Traceback" not in run.stderr
        last = run.stderr.strip().splitlines()[-1]
        assert last.startswith(f"jobgate: Redis at {tls_redis.url} is unavailable: TLS: ")
        assert VERIFY_FAILED in last


@pytest.mark.parametrize(
    ("url", "env", "message"),
    [
        ("redis://127.0.0.1:1/0", {CA_ENV: "CA"}, "use rediss://127.0.0.1:1/0"),
        ("redis://127.0.0.1:1/0?ssl_cert_reqs=required", {}, "a redis:// URL is plain text"),
        ("rediss://127.0.0.1:1/0", {CA_ENV: "/no/such/ca.pem"}, "is not a readable file"),
        ("rediss://127.0.0.1:1/0?ssl_ca_certs=/no/such.pem", {}, "ssl_ca_certs='/no/such.pem'"),
        ("rediss://127.0.0.1:1/0", {KEY_ENV: "CA"}, "needs its certificate"),
        ("rediss://127.0.0.1:1/0?ssl_cert_reqs=maybe", {}, "required, optional or none"),
        ("rediss://127.0.0.1:1/0?ssl_certs=x", {}, "unknown TLS parameter 'ssl_certs'"),
        ("sentinel://127.0.0.1:1?master_name=m&ssl_certs=x", {}, "unknown TLS parameter"),
        ("sentinel://127.0.0.1:1?master_name=m", {CA_ENV: "/no/ca.pem"}, "not a readable file"),
    ],
)
def test_tls_settings_that_cannot_work_are_configuration_errors(
    url: str, env: dict[str, str], message: str, authority: Authority,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.delenv(CA_ENV)
    for name, value in env.items():
        monkeypatch.setenv(name, str(authority.cert) if value == "CA" else value)
    with pytest.raises(ConfigurationError, match=message.replace("?", r"\?")):
        check_url(url)
