"""The ``jobgate`` command: run a worker, submit and follow jobs.

``jobgate worker`` replaces itself with ``celery -A jobgate.workers.app worker``
(the client never imports the worker package); everything else talks to Redis
through `Gateway`. Built on click, which celery already brings, so the command
works on a client-only install.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import sys
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import click
import yaml
from click.core import ParameterSource

from jobgate.client import acl, routing
from jobgate.client.connection import (
    PROFILES_ENV,
    TENANT_ENV,
    URL_ENV,
    broker_errors,
    check_url,
    connect,
    mask_url,
)
from jobgate.client.errors import (
    BrokerTlsError,
    BrokerUnavailableError,
    ConfigurationError,
    JobgateError,
)
from jobgate.client.gateway import Gateway, Job, Stream
from jobgate.client.models import JobQuery, JobRecord, JobStatus, PolicyLevel
from jobgate.client.policy import summarize_preflight
from jobgate.client.profiles import find_profiles, load_profile, public_profile
from jobgate.client.sentinel import is_sentinel, parse_sentinel_url
from jobgate.client.validation import validate_job_spec

PROG = "jobgate"


@dataclass
class Connection:
    """Where the commands find Redis (``--url``/``--tenant``, given before or after the
    command name), and the one `Gateway` they share, opened on first use."""

    url: str | None = None
    tenant: str = "default"
    _gateway: Gateway | None = field(default=None, repr=False)

    def checked_url(self) -> str:
        if not self.url:
            raise click.UsageError(f"Missing option '--url' (or set {URL_ENV}).")
        return check_url(self.url)

    def gateway(self) -> Gateway:
        if self._gateway is None:
            self._gateway = Gateway(self.checked_url(), tenant=self.tenant)
            click.get_current_context().call_on_close(self._gateway.close)
        return self._gateway


def _connection_options(*, remember: bool) -> list[click.Option]:
    """--url and --tenant: the group's own, or a command's copies that update the group's
    `Connection` when given on the command's own command line."""

    def keep(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        given = ctx.get_parameter_source(str(param.name)) is not ParameterSource.DEFAULT
        if remember and given and value is not None:
            setattr(ctx.ensure_object(Connection), str(param.name), value)
        return value

    return [
        click.Option(["--url"], envvar=URL_ENV, default=None, expose_value=not remember,
                     callback=keep, help=f"Redis URL (or set {URL_ENV})."),
        click.Option(["--tenant"], envvar=TENANT_ENV, default="default", show_default=True,
                     expose_value=not remember, callback=keep,
                     help=f"Key namespace in Redis (or set {TENANT_ENV})."),
    ]  # fmt: skip


class _JobgateGroup(click.Group):
    """The top-level group: every command it holds takes --url/--tenant too."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if not isinstance(cmd, click.Group):
            cmd.params.extend(_connection_options(remember=True))
        super().add_command(cmd, name)


def _print_record(record: JobRecord) -> None:
    click.echo(json.dumps(record.model_dump(mode="json"), indent=2))


pass_connection = click.make_pass_decorator(Connection, ensure=True)


@click.group(cls=_JobgateGroup, params=_connection_options(remember=False))
@click.pass_context
def main(ctx: click.Context, url: str | None, tenant: str) -> None:
    """The jobgate command: submit batch jobs to clusters through Redis."""
    ctx.obj = Connection(url=url, tenant=tenant)


@main.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--profile",
    "profiles",
    multiple=True,
    required=True,
    help="Cluster profile to serve (name or path); repeat for several.",
)
@click.option("--concurrency", type=int, default=4, show_default=True, help="Worker processes.")
@click.option("--loglevel", default="info", show_default=True)
@click.option("--hostname", default=None, help="Worker name (default jobgate-<clusters>@<host>).")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
@pass_connection
def worker(
    connection: Connection,
    profiles: tuple[str, ...],
    concurrency: int,
    loglevel: str,
    hostname: str | None,
    celery_args: tuple[str, ...],
) -> None:
    """Serve cluster profiles: consume their queues and poll their schedulers.

    Extra arguments after `--` go to `celery worker` unchanged.
    """
    url = connection.checked_url()
    clusters = [load_profile(p).name for p in profiles]
    queues = [q for c in clusters for q in (routing.queue(c), routing.poll_queue(c))]
    name = hostname or f"jobgate-{'-'.join(clusters)}@{socket.gethostname()}"
    env = {**os.environ, URL_ENV: url, TENANT_ENV: connection.tenant,
           PROFILES_ENV: ",".join(profiles)}  # fmt: skip
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "jobgate.workers.app",
        "worker",
        "-Q",
        ",".join(queues),
        "-n",
        name,
        f"--concurrency={concurrency}",
        f"--loglevel={loglevel}",
        "--without-mingle",
        "--without-gossip",
        *celery_args,
    ]
    _check_tls(url)
    click.echo(
        f"jobgate worker {name}: clusters {', '.join(clusters)} at {mask_url(url)}", err=True
    )
    os.execve(sys.executable, argv, env)  # noqa: S606 - becomes the worker, by design


# --- Flower, and the TLS check before becoming a worker or Flower -------------------------


def _check_tls(url: str) -> None:
    """A TLS setting that cannot work (untrusted CA, expired certificate, wrong name, no
    client certificate) is an error now, not a reconnect loop in a daemon's log. A Redis
    that is down is not: the worker and Flower wait for it."""
    through_sentinels = is_sentinel(url) and parse_sentinel_url(url).tls is not None
    if urlsplit(url).scheme != "rediss" and not through_sentinels:
        return
    client = connect(url)
    try:
        with broker_errors(url):
            client.ping()
    except BrokerTlsError:
        raise
    except BrokerUnavailableError as e:
        click.echo(f"{PROG}: {e} (starting anyway: it retries)", err=True)
    finally:
        client.close()


@main.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--address",
    default="127.0.0.1",
    show_default=True,
    help="Interface to serve on (Flower's own default is every interface).",
)
@click.option("--port", type=int, default=5555, show_default=True)
@click.argument("flower_args", nargs=-1, type=click.UNPROCESSED)
@pass_connection
def flower(connection: Connection, address: str, port: int,
           flower_args: tuple[str, ...]) -> None:  # fmt: skip
    """Run Flower for the tenant's workers, with the workers' broker settings (key prefix,
    TLS: JOBGATE_TLS_* or the URL's ssl_* parameters).

    Extra arguments after `--` go to Flower unchanged. Give the password by
    FLOWER_BASIC_AUTH=user:password in the environment, not as an argument (every user
    of the host can read a command line)."""
    url = connection.checked_url()
    if importlib.util.find_spec("flower") is None:
        raise ConfigurationError("Flower is not installed here: pip install 'jobgate[worker]'")
    _check_tls(url)
    env = {**os.environ, URL_ENV: url, TENANT_ENV: connection.tenant}
    argv = [sys.executable, "-m", "celery", "-A", "jobgate.workers.app", "flower",
            f"--address={address}", f"--port={port}", *flower_args]  # fmt: skip
    where = f"tenant {connection.tenant} at {mask_url(url)}"
    click.echo(f"jobgate flower on http://{address}:{port}: {where}", err=True)
    os.execve(sys.executable, argv, env)  # noqa: S606 - becomes Flower, by design


# --- end of Flower and TLS ----------------------------------------------------------------


@main.command()
@click.argument("cluster")
@click.argument("command", nargs=-1)
@click.option(
    "--spec",
    "spec_file",
    type=click.Path(dir_okay=False, exists=True),
    help="A job spec file (YAML or JSON) instead of COMMAND.",
)
@click.option("--name", default="job", show_default=True)
@click.option("--array", default=None, help="Array indices, e.g. 0-9%2.")
@click.option("--tag", "tags", multiple=True)
@click.option("--env", "env", multiple=True, help="NAME=VALUE for the job's environment.")
@click.option(
    "--allow-policy-risk",
    is_flag=True,
    help="Submit despite BLOCK findings, where the profile allows overrides.",
)
@click.option(
    "--input", "inputs", multiple=True, metavar="PATH",
    help="A local file or directory staged into the job's work directory (repeatable).",
)  # fmt: skip
@click.option(
    "--output", "outputs", multiple=True, metavar="GLOB",
    help="Files of the work directory to keep in S3, e.g. 'results/**' (repeatable).",
)  # fmt: skip
@click.option("--run-id", default=None, help="Groups jobs' files in storage.")
@click.option("--wait/--no-wait", default=False, help="Follow stdout, then print the record.")
@click.option("--json", "as_json", is_flag=True, help='Print {"id": ...} instead of the id.')
@pass_connection
def submit(connection: Connection, cluster: str, command: tuple[str, ...],
           spec_file: str | None, name: str, array: str | None, tags: tuple[str, ...],
           env: tuple[str, ...], allow_policy_risk: bool, inputs: tuple[str, ...],
           outputs: tuple[str, ...], run_id: str | None, wait: bool,
           as_json: bool) -> None:  # fmt: skip
    """Submit COMMAND (run by /bin/sh -c when it is one word, as argv otherwise), or a
    spec file with --spec. Prints the job id. Inputs are uploaded first, with a
    progress bar on a terminal."""
    if bool(command) == bool(spec_file):
        raise click.UsageError("give either COMMAND or --spec FILE")
    variables = dict(item.split("=", 1) for item in env if "=" in item)
    if len(variables) != len(env):
        raise click.BadParameter("use NAME=VALUE", param_hint="--env")
    spec: Any = spec_file
    if command:
        spec = {"name": name, "command": command[0] if len(command) == 1 else list(command),
                "tags": list(tags), "env": variables}  # fmt: skip
        if array:
            spec["array"] = array
    files = {"inputs": list(inputs), "outputs": list(outputs)} | (
        {"run_id": run_id} if run_id else {}
    )
    if inputs or outputs or run_id:
        given = validate_job_spec(spec).model_dump(mode="json", exclude_defaults=True)
        files["inputs"] = given.get("inputs", []) + files["inputs"]
        files["outputs"] = given.get("outputs", []) + files["outputs"]
        spec = {**given, **files}
    gateway = connection.gateway()
    job = gateway.submit(validate_job_spec(spec), cluster, allow_policy_risk=allow_policy_risk)
    click.echo(json.dumps({"id": job.id}) if as_json else job.id)
    if wait:
        _follow(job)
        _print_record(job.wait())


@main.command()
@click.argument("spec_file", type=click.Path(dir_okay=False, exists=True))
@click.option("--cluster", required=True)
@click.option(
    "--profile",
    "profile_name",
    default=None,
    help="Check against this local profile instead of the one a live worker serves.",
)
@click.option("--all", "show_all", is_flag=True, help="Show passed checks too.")
@pass_connection
def preflight(connection: Connection, spec_file: str, cluster: str, profile_name: str | None,
              show_all: bool) -> None:  # fmt: skip
    """Check a spec against a cluster's policy without submitting it.

    Exits 0 when nothing blocks, 3 when a finding blocks the job."""
    profile = load_profile(profile_name) if profile_name else None
    findings = connection.gateway().preflight(
        spec_file, cluster, include_passes=show_all, profile=profile
    )
    for finding in findings:
        click.echo(f"{finding.level.value:<5}  {finding.code:<24}  {finding.message}")
    level, _ = summarize_preflight(findings)
    click.echo(f"preflight: {level.value}" + ("" if findings else " (no check applied)"))
    if level is PolicyLevel.BLOCK:
        sys.exit(3)


@main.command()
@pass_connection
def clusters(connection: Connection) -> None:
    """Clusters a live worker serves right now."""
    served = connection.gateway().clusters()
    if not served:
        click.echo("no live worker serves any cluster", err=True)
    for info in served.values():
        click.echo(f"{info.name:<16} {info.profile.backend:<11} {', '.join(info.workers)}")


@main.group()
def profiles() -> None:
    """Cluster profiles found on this machine."""


@profiles.command("ls")
def profiles_ls() -> None:
    """Every profile that can be loaded by name, and where it comes from."""
    for name, source in find_profiles().items():
        try:
            kind: str = load_profile(name).backend
        except JobgateError as e:
            kind = f"INVALID: {e}"
        click.echo(f"{name:<16} {kind:<11} {source.describe()}")


@profiles.command("show")
@click.argument("name")
def profiles_show(name: str) -> None:
    """A profile with every default filled in, secrets redacted, as YAML."""
    click.echo(yaml.safe_dump(public_profile(load_profile(name)), sort_keys=False), nl=False)


def _follow(job: Job) -> None:
    for chunk in job.logs(follow=True):
        click.echo(chunk, nl=False)


@main.command()
@click.argument("job_id")
@click.option("--fresh", is_flag=True, help="Ask a worker to query the cluster first.")
@pass_connection
def status(connection: Connection, job_id: str, fresh: bool) -> None:
    """Print a job's record as JSON."""
    _print_record(connection.gateway().job(job_id).record(fresh=fresh))


@main.command()
@click.argument("job_id")
@click.option("--timeout", "timeout_s", type=float, default=None)
@pass_connection
def wait(connection: Connection, job_id: str, timeout_s: float | None) -> None:
    """Wait for a job to finish and print its final record."""
    _print_record(connection.gateway().job(job_id).wait(timeout_s=timeout_s))


@main.command()
@click.argument("job_id")
@click.option("--stderr", is_flag=True, help="Read stderr instead of stdout.")
@click.option("-f", "--follow", is_flag=True, help="Keep reading until the job finishes.")
@click.option("--index", type=int, default=None, help="Element of an array job.")
@pass_connection
def logs(connection: Connection, job_id: str, stderr: bool, follow: bool,
         index: int | None) -> None:  # fmt: skip
    """Print a job's output."""
    stream: Stream = "stderr" if stderr else "stdout"
    for chunk in connection.gateway().job(job_id).logs(stream, follow=follow, index=index):
        click.echo(chunk, nl=False)


@main.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with object keys).")
@pass_connection
def outputs(connection: Connection, job_id: str, as_json: bool) -> None:
    """List the files a finished job kept in S3: path, size, sha256 (nothing downloaded)."""
    job = connection.gateway().job(job_id)
    files = job.outputs()
    if as_json:
        click.echo(json.dumps([f.model_dump(mode="json") for f in files], indent=2))
        return
    for f in files:
        click.echo(f"{f.size:>12}  {f.sha256[:16]}  {f.path}")


@main.command()
@click.argument("job_id")
@click.argument("dest", type=click.Path(file_okay=False))
@click.option("--pattern", default=None, metavar="GLOB", help="Only outputs matching it.")
@click.option("--overwrite", is_flag=True, help="Replace files that exist in DEST.")
@click.option("--no-logs", "no_logs", is_flag=True, help="Leave stdout/stderr out.")
@click.option("--partial", is_flag=True, help="Take what was kept of incomplete outputs.")
@click.option("--json", "as_json", is_flag=True, help="Print the paths as a JSON list.")
@pass_connection
def retrieve(connection: Connection, job_id: str, dest: str, pattern: str | None,
             overwrite: bool, no_logs: bool, partial: bool, as_json: bool) -> None:  # fmt: skip
    """Download a job's outputs (and logs) into DEST, each checked against its sha256;
    a progress bar on a terminal. Prints the local paths."""
    job = connection.gateway().job(job_id)
    paths = job.retrieve(dest, pattern=pattern, overwrite=overwrite, logs=not no_logs,
                         partial=partial)  # fmt: skip
    click.echo(json.dumps([str(p) for p in paths]) if as_json else "\n".join(map(str, paths)))


@main.command()
@click.argument("job_ids", metavar="JOB_ID...", nargs=-1, required=True)
@pass_connection
def cancel(connection: Connection, job_ids: tuple[str, ...]) -> None:
    """Cancel jobs (one task per cluster, one scheduler command per chunk of ids) and
    print the record of each, one JSON document per job."""
    for record in connection.gateway().cancel(job_ids):
        _print_record(record)


@main.command(name="list")
@click.option("--cluster", default=None)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([s.value for s in JobStatus], case_sensitive=False),
)
@click.option("--tag", "tags", multiple=True)
@click.option("--owner", default=None)
@click.option("--name", default=None)
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--newest-first", "reverse", is_flag=True)
@pass_connection
def list_jobs(
    connection: Connection,
    cluster: str | None,
    statuses: tuple[str, ...],
    tags: tuple[str, ...],
    owner: str | None,
    name: str | None,
    limit: int,
    reverse: bool,
) -> None:
    """List jobs, one line each: id, status, cluster, name, created."""
    query = JobQuery(
        statuses=frozenset(JobStatus(s.upper()) for s in statuses) or None,
        cluster=cluster,
        tags=frozenset(tags) or None,
        owner=owner,
        name=name,
        limit=limit,
        reverse=reverse,
    )
    width = shutil.get_terminal_size().columns
    for r in connection.gateway().list(query):
        line = f"{r.id}  {r.status.value:<9}  {r.cluster:<12}  {r.name:<20}  {r.created_at:%F %T}"
        click.echo(line[:width])


# -- jobgate acl: Redis ACL users of a tenant (client/acl.py) ---------------------------


@main.command(name="acl")
@click.option(
    "--role",
    type=click.Choice(acl.ROLES),
    required=True,
    help="submitter, worker (a gateway host), viewer (dashboards) or flower.",
)
@click.option("--user", "user", required=True, help="The Redis ACL user name.")
@click.option(
    "--password-env",
    metavar="VAR",
    default=None,
    help="Environment variable holding the password (only its SHA-256 is printed).",
)
@click.option(
    "--password-file",
    type=click.File("r"),
    default=None,
    help="File whose first line is the password (only its SHA-256 is printed).",
)
@click.option(
    "--clusters",
    default=None,
    metavar="NAME,...",
    help="worker: consume only these clusters' queues (default: all of the tenant).",
)
@click.option(
    "--db",
    type=int,
    default=0,
    show_default=True,
    help="Redis database number of the URLs (kombu's channels carry it).",
)
@click.option(
    "--format",
    "form",
    type=click.Choice(["setuser", "aclfile"]),
    default="setuser",
    show_default=True,
    help="ACL SETUSER commands for redis-cli, or aclfile lines.",
)
@pass_connection
def acl_user(
    connection: Connection,
    role: acl.Role,
    user: str,
    password_env: str | None,
    password_file: Any,
    clusters: str | None,
    db: int,
    form: acl.Format,
) -> None:
    """Print the Redis ACL rules of one user of the tenant (--tenant) in ROLE: its key
    prefix, its exact pub/sub channels and the commands jobgate, Celery and Flower use.

    Without --password-env/--password-file the password is a placeholder to replace."""
    if password_env and password_file:
        raise click.UsageError("give --password-env or --password-file, not both")
    names = [c.strip() for c in clusters.split(",") if c.strip()] if clusters else []
    access = acl.grant(role, connection.tenant, clusters=names, db=db)
    password: str | None = None
    if password_env:
        password = os.environ.get(password_env)
        if not password:
            raise click.UsageError(f"environment variable {password_env} is not set")
    elif password_file:
        password = password_file.readline().rstrip("\r\n")
    line = acl.render(user, acl.user_rules(user, access, password), form)
    if password is None:
        click.echo(
            f"{PROG} acl: password left as {acl.PLACEHOLDER_PASSWORD}: replace it "
            "(or pass --password-env/--password-file)",
            err=True,
        )
    click.echo(line)


def run() -> None:
    """Entry point: jobgate errors become one clear line and exit status 1."""
    try:
        main(standalone_mode=True)
    except JobgateError as e:
        click.echo(f"{PROG}: {e}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    run()
