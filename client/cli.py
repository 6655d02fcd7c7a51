"""The ``jobgate`` command: run a worker, submit and follow jobs.

``jobgate worker`` replaces itself with ``celery -A jobgate.workers.app worker``
(the client never imports the worker package); everything else talks to Redis
through `Gateway`. Built on click, which celery already brings, so the command
works on a client-only install.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from typing import Any

import click
import yaml

from jobgate.client.connection import TENANT_ENV, URL_ENV, check_url, mask_url
from jobgate.client.errors import JobgateError
from jobgate.client.gateway import Gateway, Job, Stream
from jobgate.client.models import JobRecord, JobStatus, PolicyLevel
from jobgate.client.policy import summarize_preflight
from jobgate.client.profiles import find_profiles, load_profile, public_profile
from jobgate.client.validation import validate_job_spec

url_option = click.option(
    "--url", envvar=URL_ENV, required=True, help=f"Redis URL (or set {URL_ENV})."
)
tenant_option = click.option(
    "--tenant",
    envvar=TENANT_ENV,
    default="default",
    show_default=True,
    help=f"Key namespace in Redis (or set {TENANT_ENV}).",
)


def _print_record(record: JobRecord) -> None:
    click.echo(json.dumps(record.model_dump(mode="json"), indent=2))


@click.group()
def main() -> None:
    """jobgate: submit batch jobs to clusters through Redis."""


@main.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--profile",
    "profiles",
    multiple=True,
    required=True,
    help="Cluster profile to serve (name or path); repeat for several.",
)
@url_option
@tenant_option
@click.option("--concurrency", type=int, default=4, show_default=True, help="Worker processes.")
@click.option("--loglevel", default="info", show_default=True)
@click.option("--hostname", default=None, help="Worker name (default jobgate-<clusters>@<host>).")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(
    profiles: tuple[str, ...],
    url: str,
    tenant: str,
    concurrency: int,
    loglevel: str,
    hostname: str | None,
    celery_args: tuple[str, ...],
) -> None:
    """Serve cluster profiles: consume their queues and poll their schedulers.

    Extra arguments after `--` go to `celery worker` unchanged.
    """
    check_url(url)
    clusters = [load_profile(p).name for p in profiles]
    queues = [q for c in clusters for q in (f"jobgate.{c}", f"jobgate.{c}.poll")]
    name = hostname or f"jobgate-{'-'.join(clusters)}@{socket.gethostname()}"
    env = {**os.environ, URL_ENV: url, TENANT_ENV: tenant, "JOBGATE_PROFILES": ",".join(profiles)}
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
    click.echo(
        f"jobgate worker {name}: clusters {', '.join(clusters)} at {mask_url(url)}", err=True
    )
    os.execve(sys.executable, argv, env)  # noqa: S606 - becomes the worker, by design


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
@click.option("--wait/--no-wait", default=False, help="Follow stdout, then print the record.")
@url_option
@tenant_option
def submit(cluster: str, command: tuple[str, ...], spec_file: str | None, name: str,
           array: str | None, tags: tuple[str, ...], env: tuple[str, ...],
           allow_policy_risk: bool, wait: bool, url: str, tenant: str) -> None:  # fmt: skip
    """Submit COMMAND (run by /bin/sh -c when it is one word, as argv otherwise), or a
    spec file with --spec. Prints the job id."""
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
    with Gateway(url, tenant=tenant) as gw:
        job = gw.submit(validate_job_spec(spec), cluster, allow_policy_risk=allow_policy_risk)
        click.echo(job.id)
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
@url_option
@tenant_option
def preflight(spec_file: str, cluster: str, profile_name: str | None, show_all: bool, url: str,
              tenant: str) -> None:  # fmt: skip
    """Check a spec against a cluster's policy without submitting it.

    Exits 0 when nothing blocks, 3 when a finding blocks the job."""
    profile = load_profile(profile_name) if profile_name else None
    with Gateway(url, tenant=tenant) as gw:
        findings = gw.preflight(spec_file, cluster, include_passes=show_all, profile=profile)
    for finding in findings:
        click.echo(f"{finding.level.value:<5}  {finding.code:<24}  {finding.message}")
    level, _ = summarize_preflight(findings)
    click.echo(f"preflight: {level.value}" + ("" if findings else " (no check applied)"))
    if level is PolicyLevel.BLOCK:
        sys.exit(3)


@main.command()
@url_option
@tenant_option
def clusters(url: str, tenant: str) -> None:
    """Clusters a live worker serves right now."""
    with Gateway(url, tenant=tenant) as gw:
        served = gw.clusters()
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
@url_option
@tenant_option
def status(job_id: str, fresh: bool, url: str, tenant: str) -> None:
    """Print a job's record as JSON."""
    with Gateway(url, tenant=tenant) as gw:
        _print_record(gw.job(job_id).record(fresh=fresh))


@main.command()
@click.argument("job_id")
@click.option("--timeout", "timeout_s", type=float, default=None)
@url_option
@tenant_option
def wait(job_id: str, timeout_s: float | None, url: str, tenant: str) -> None:
    """Wait for a job to finish and print its final record."""
    with Gateway(url, tenant=tenant) as gw:
        _print_record(gw.job(job_id).wait(timeout_s=timeout_s))


@main.command()
@click.argument("job_id")
@click.option("--stderr", is_flag=True, help="Read stderr instead of stdout.")
@click.option("-f", "--follow", is_flag=True, help="Keep reading until the job finishes.")
@click.option("--index", type=int, default=None, help="Element of an array job.")
@url_option
@tenant_option
def logs(job_id: str, stderr: bool, follow: bool, index: int | None, url: str, tenant: str) -> None:
    """Print a job's output."""
    with Gateway(url, tenant=tenant) as gw:
        stream: Stream = "stderr" if stderr else "stdout"
        for chunk in gw.job(job_id).logs(stream, follow=follow, index=index):
            click.echo(chunk, nl=False)


@main.command()
@click.argument("job_id")
@url_option
@tenant_option
def cancel(job_id: str, url: str, tenant: str) -> None:
    """Cancel a job and print its record."""
    with Gateway(url, tenant=tenant) as gw:
        _print_record(gw.job(job_id).cancel())


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
@url_option
@tenant_option
def list_jobs(
    cluster: str | None,
    statuses: tuple[str, ...],
    tags: tuple[str, ...],
    owner: str | None,
    name: str | None,
    limit: int,
    reverse: bool,
    url: str,
    tenant: str,
) -> None:
    """List jobs, one line each: id, status, cluster, name, created."""
    with Gateway(url, tenant=tenant) as gw:
        records = gw.list(
            statuses={JobStatus(s.upper()) for s in statuses} or None,
            cluster=cluster,
            tags=tags or None,
            owner=owner,
            name=name,
            limit=limit,
            reverse=reverse,
        )
    width = shutil.get_terminal_size().columns
    for r in records:
        line = f"{r.id}  {r.status.value:<9}  {r.cluster:<12}  {r.name:<20}  {r.created_at:%F %T}"
        click.echo(line[:width])


def run() -> None:
    """Entry point: jobgate errors become one clear line and exit status 1."""
    try:
        main(standalone_mode=True)
    except JobgateError as e:
        click.echo(f"jobgate: {e}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    run()
