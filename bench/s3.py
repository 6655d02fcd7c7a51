"""Job files through jobgate vs boto3 alone, to the same real S3 server in the same run.

    python bench/s3.py [--runs 3] [--big-mb 1024] [--small 1000]

Starts SeaweedFS, Redis and one worker (local backend, storage on that SeaweedFS), then
per run, interleaved:
- big file up: boto3 `upload_file` of a `--big-mb` file vs `Gateway.submit` of a job
  with it as input (pack, sha256, multipart upload through presigned URLs);
- big file down: boto3 `download_file` vs `Job.retrieve` of the same file as the job's
  output (download through a presigned URL, sha256 checked);
- `--small` files of 4 KiB up: a boto3 `upload_file` loop vs `submit` with the
  directory as input; down: a `download_file` loop vs `retrieve`.
Prints medians and the jobgate/boto3 throughput ratio, writes bench/results/s3.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import devstack  # noqa: E402

from jobgate.client import Gateway, JobSpec, JobStatus  # noqa: E402

MIB = 1 << 20


def timed(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def make_files(root: Path, big_mb: int, small: int) -> tuple[Path, Path]:
    big = root / "big.bin"
    block = bytes(range(256)) * 4096  # 1 MiB
    with big.open("wb") as f:
        for n in range(big_mb):
            f.write(block[n % 256 :] + block[: n % 256])
    many = root / "many"
    many.mkdir()
    for n in range(small):
        (many / f"f{n:05d}.dat").write_bytes(n.to_bytes(4, "big") * 1024)
    return big, many


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--big-mb", type=int, default=1024)
    parser.add_argument("--small", type=int, default=1000)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="jobgate-bench-s3-"))
    s3 = devstack.S3Server(base / "s3").start()
    redis = devstack.RedisServer(base / "redis").start()
    worker = None
    try:
        bucket = s3.create_bucket("bench")
        client = s3.client()
        profile = {
            "name": "bench", "backend": "local", "local": {"work_dir": str(base / "work")},
            "poll_interval_min_s": 0.2, "poll_interval_max_s": 0.5,
            "storage": {"prefix": f"s3://{bucket}/jobs", "endpoint_url": s3.endpoint_url,
                        "work_dir_retention_s": 0,
                        "credentials": {"access_key_id": "env:BENCH_KEY",
                                        "secret_access_key": "env:BENCH_SECRET"}},
        }  # fmt: skip
        (base / "bench.yaml").write_text(yaml.safe_dump(profile))
        env = {"BENCH_KEY": s3.access_key, "BENCH_SECRET": s3.secret_key}
        worker = devstack.Worker(base / "worker", redis.url, [str(base / "bench.yaml")],
                                 env=env, concurrency=2).start()  # fmt: skip
        gw = Gateway(redis.url)
        big, many = make_files(base, args.big_mb, args.small)
        figures: dict[str, list[float]] = {}

        def add(name: str, seconds: float) -> None:
            figures.setdefault(name, []).append(seconds)

        for run in range(args.runs):
            down = base / f"down{run}"
            down.mkdir()
            add("big_up_boto3", timed(lambda: client.upload_file(str(big), bucket, "raw/big")))
            add("big_down_boto3",
                timed(lambda: client.download_file(bucket, "raw/big", str(down / "big"))))  # fmt: skip
            spec = JobSpec(name="big", command="mv big.bin out.bin", inputs=[str(big)],
                           outputs=["out.bin"])  # fmt: skip
            job = None

            def submit(spec: JobSpec) -> None:
                nonlocal job
                job = gw.submit(spec, "bench")

            add("big_up_jobgate", timed(lambda: submit(spec)))
            assert job is not None
            assert job.wait(timeout_s=600).status is JobStatus.SUCCEEDED
            add("big_down_jobgate",
                timed(lambda: job.retrieve(down / "jobgate", logs=False)))  # fmt: skip

            names = sorted(p.name for p in many.iterdir())
            add("small_up_boto3", timed(lambda: [client.upload_file(str(many / n), bucket,
                                                                    f"raw/many/{n}") for n in names]))  # fmt: skip
            (down / "many").mkdir()
            add("small_down_boto3", timed(lambda: [client.download_file(bucket, f"raw/many/{n}",
                                                                        str(down / "many" / n)) for n in names]))  # fmt: skip
            small = JobSpec(name="many", command="true", inputs=[str(many)], outputs=["many/*"])
            add("small_up_jobgate", timed(lambda: submit(small)))
            assert job.wait(timeout_s=600).status is JobStatus.SUCCEEDED
            add("small_down_jobgate",
                timed(lambda: job.retrieve(down / "many-jobgate", logs=False)))  # fmt: skip
            shutil.rmtree(down)
            print(f"run {run + 1}/{args.runs}: " + ", ".join(f"{k} {v[-1]:.2f} s"
                                                            for k, v in figures.items()))  # fmt: skip
    finally:
        if worker is not None:
            worker.stop()
        redis.stop()
        s3.stop()
        shutil.rmtree(base, ignore_errors=True)

    medians = {k: statistics.median(v) for k, v in figures.items()}
    big_mib, small_n = args.big_mb, args.small
    table = {
        "big_up_mib_s": {w: big_mib / medians[f"big_up_{w}"] for w in ("boto3", "jobgate")},
        "big_down_mib_s": {w: big_mib / medians[f"big_down_{w}"] for w in ("boto3", "jobgate")},
        "small_up_ms_per_file": {w: 1000 * medians[f"small_up_{w}"] / small_n
                                 for w in ("boto3", "jobgate")},  # fmt: skip
        "small_down_ms_per_file": {w: 1000 * medians[f"small_down_{w}"] / small_n
                                   for w in ("boto3", "jobgate")},  # fmt: skip
    }
    ratios = {
        "big_up": table["big_up_mib_s"]["jobgate"] / table["big_up_mib_s"]["boto3"],
        "big_down": table["big_down_mib_s"]["jobgate"] / table["big_down_mib_s"]["boto3"],
        "small_up": medians["small_up_boto3"] / medians["small_up_jobgate"],
        "small_down": medians["small_down_boto3"] / medians["small_down_jobgate"],
    }
    print(f"\n{'figure':<24} {'boto3':>10} {'jobgate':>10} {'jobgate/boto3 speed':>20}")
    for name, row in table.items():
        ratio = ratios[name.rsplit("_", 2)[0] if "mib" in name else name.rsplit("_", 3)[0]]
        print(f"{name:<24} {row['boto3']:>10.2f} {row['jobgate']:>10.2f} {ratio:>20.2f}")
    out = ROOT / "bench" / "results" / "s3.json"
    out.write_text(json.dumps({
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.platform(), "python": platform.python_version(),
        "args": vars(args), "runs_s": figures, "medians_s": medians, "table": table,
        "ratios_jobgate_over_boto3_speed": ratios,
    }, indent=2) + "\n")  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
