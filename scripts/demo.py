"""jobgate demo: Redis, an S3 server (SeaweedFS), a local-backend worker and Flower on
free loopback ports, then a few jobs through the gateway: output streamed, an input
uploaded and an output retrieved, results printed.

    python scripts/demo.py          # run the demo, then stop everything it started
    python scripts/demo.py --keep   # leave the services up until Ctrl-C
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
from pathlib import Path

from celery.result import AsyncResult

sys.path.insert(0, str(Path(__file__).resolve().parent))

import devstack
import yaml

from jobgate.client import Gateway, JobSpec, JobStatus, PolicyBlockedError, summarize_preflight

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep services up until Ctrl-C")
    args = parser.parse_args()

    run_dir = ROOT / ".devstack"
    run_dir.mkdir(exist_ok=True)
    logs = Path(tempfile.mkdtemp(prefix="demo-", dir=run_dir))
    redis = devstack.RedisServer(logs).start()
    services: list[devstack.Service] = [redis]
    try:
        print(f"redis-server  {redis.url} (pid {redis.pid})")
        s3 = devstack.S3Server(logs / "s3").start()
        services.append(s3)
        bucket = s3.create_bucket("demo-jobs")
        print(f"S3 (weed)     {s3.endpoint_url}, bucket {bucket} (pid {s3.pid})")
        profile = _local_with_storage(logs, s3.endpoint_url, bucket)
        keys = {"DEMO_S3_KEY_ID": s3.access_key, "DEMO_S3_SECRET": s3.secret_key}
        worker = devstack.Worker(logs, redis.url, [str(profile)], name="worker", env=keys)
        services.append(worker.start())
        print(f"worker        {worker.hostname} serving 'local' with S3 storage ({profile})")
        flower = devstack.Flower(logs, redis.url).start()
        services.append(flower)
        print(f"flower        {flower.http_url}")
        print(f"logs          {logs}\n")
        gw = Gateway(redis.url)
        run_jobs(gw)
        stage_files(gw, logs)
        print(f"\nFlower shows the tasks above at {flower.http_url}")
        if args.keep:
            print("Services stay up; Ctrl-C stops them.")
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        for service in reversed(services):
            service.stop()
        print("stopped redis-server, S3, worker and Flower")
    return 0


def _local_with_storage(directory: Path, endpoint_url: str, bucket: str) -> Path:
    """The built-in `local` profile with a storage block on the demo's S3 server; the
    worker alone gets the keys, through the variables the profile names."""
    profile = yaml.safe_load((ROOT / "profiles" / "local.yaml").read_text())
    profile["storage"] = {
        "prefix": f"s3://{bucket}/jobgate",
        "endpoint_url": endpoint_url,
        "credentials": {"access_key_id": "env:DEMO_S3_KEY_ID",
                        "secret_access_key": "env:DEMO_S3_SECRET"},
    }  # fmt: skip
    path = directory / "local.yaml"
    path.write_text(yaml.safe_dump(profile, sort_keys=False))
    return path


def stage_files(gw: Gateway, directory: Path) -> None:
    """A job with an input file and declared outputs: uploaded, run, retrieved."""
    words = directory / "words.txt"
    words.write_text("pear\napple\nfig\n")
    job = gw.submit(
        JobSpec(name="sorter", command="mkdir -p results && sort words.txt > results/sorted.txt",
                inputs=[str(words)], outputs=["results/**"]),
        cluster="local",
    )  # fmt: skip
    print(f"\nsubmitted {job.id} (sorter) with input {words.name} (uploaded to S3 first)")
    record = job.wait(timeout_s=120)
    print(f"sorter: {record.status.value}; outputs kept in S3:")
    for f in job.outputs():
        print(f"  {f.path}  {f.size} bytes  sha256 {f.sha256[:16]}…  key {f.key}")
    dest = directory / "retrieved"
    for path in job.retrieve(dest):
        print(f"  retrieved {path.relative_to(directory)}")
    print(
        "  results/sorted.txt: "
        + (dest / "results" / "sorted.txt").read_text().replace(os.linesep, " ")
    )


def run_jobs(gw: Gateway) -> None:
    hello = gw.submit(
        JobSpec(name="hello", command="echo hello from $(hostname); echo oops >&2; exit 3"),
        cluster="local",
    )
    print(f"submitted {hello.id} (hello); its stdout:")
    for chunk in hello.logs(follow=True):
        print("  | " + chunk, end="")
    record = hello.wait(timeout_s=120)
    print(f"hello: {record.status.value}, exit code {record.exit_code}, reason {record.reason!r}")
    print(f"  stderr: {''.join(hello.logs('stderr')).strip()!r}")
    for transition in record.history:
        print(f"  {transition.at:%H:%M:%S.%f}  {transition.status.value}")
    final = AsyncResult(hello.result_id, app=gw.celery).get(timeout=60)
    print(f"  the result backend holds the same final record: {final['status']}")

    array = gw.submit(
        JobSpec(name="arr", command="echo element $JOBGATE_ARRAY_INDEX", array="0-4%2"),
        cluster="local",
    )
    sleeper = gw.submit(JobSpec(name="sleeper", command="sleep 600"), cluster="local")
    done = array.wait(timeout_s=120)
    print(
        f"\narray 0-4%2: {done.status.value}; elements: "
        + ", ".join(f"{e.index}={e.status.value}" for e in done.elements)
    )
    print("  element 3 said: " + "".join(array.logs(index=3)).strip())

    forever = JobSpec(name="forever", command="sleep infinity")
    level, text = summarize_preflight(gw.preflight(forever, cluster="local"))
    print(f"\npreflight of 'sleep infinity' on local: {level.value}\n  {text}")
    try:
        gw.submit(forever, cluster="local")
    except PolicyBlockedError:
        print("  so submit() refused it; nothing was queued")

    devstack.wait_until(lambda: sleeper.status() is JobStatus.RUNNING, 60, "sleeper to run")
    cancelled = sleeper.cancel()
    print(f"\nsleeper: {cancelled.status.value} ({cancelled.reason})")
    print(
        f"\nscheduler status queries so far: {gw.scheduler_queries('local')} "
        f"(one per poll interval for all active jobs)"
    )
    for r in gw.list(cluster="local", reverse=True, limit=3):
        print(f"  {r.id}  {r.status.value:<9}  {r.name}")


if __name__ == "__main__":
    sys.exit(main())
