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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import devstack  # noqa: E402

from jobgate.client import Gateway, JobSpec, JobStatus  # noqa: E402

MIB = 1 << 20


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


def one_run(
    client: Any, gw: Gateway, bucket: str, big: Path, many: Path, down: Path
) -> dict[str, float]:
    """One run of every figure, in seconds; boto3 and jobgate alternate."""
    took: dict[str, float] = {}
    (down / "many").mkdir(parents=True)
    names = sorted(p.name for p in many.iterdir())

    start = time.perf_counter()
    client.upload_file(str(big), bucket, "raw/big")
    took["big_up_boto3"] = time.perf_counter() - start
    start = time.perf_counter()
    client.download_file(bucket, "raw/big", str(down / "big"))
    took["big_down_boto3"] = time.perf_counter() - start

    spec = JobSpec(name="big", command="mv big.bin out.bin", inputs=[str(big)],
                   outputs=["out.bin"])  # fmt: skip
    start = time.perf_counter()
    job = gw.submit(spec, "bench")
    took["big_up_jobgate"] = time.perf_counter() - start
    assert job.wait(timeout_s=600).status is JobStatus.SUCCEEDED
    start = time.perf_counter()
    job.retrieve(down / "jobgate", logs=False)
    took["big_down_jobgate"] = time.perf_counter() - start

    start = time.perf_counter()
    for name in names:
        client.upload_file(str(many / name), bucket, f"raw/many/{name}")
    took["small_up_boto3"] = time.perf_counter() - start
    start = time.perf_counter()
    for name in names:
        client.download_file(bucket, f"raw/many/{name}", str(down / "many" / name))
    took["small_down_boto3"] = time.perf_counter() - start

    spec = JobSpec(name="many", command="true", inputs=[str(many)], outputs=["many/*"])
    start = time.perf_counter()
    job = gw.submit(spec, "bench")
    took["small_up_jobgate"] = time.perf_counter() - start
    assert job.wait(timeout_s=600).status is JobStatus.SUCCEEDED
    start = time.perf_counter()
    job.retrieve(down / "many-jobgate", logs=False)
    took["small_down_jobgate"] = time.perf_counter() - start
    return took


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
        for run in range(args.runs):
            down = base / f"down{run}"
            for name, seconds in one_run(client, gw, bucket, big, many, down).items():
                figures.setdefault(name, []).append(seconds)
            shutil.rmtree(down)
            last = ", ".join(f"{k} {v[-1]:.2f} s" for k, v in figures.items())
            print(f"run {run + 1}/{args.runs}: {last}")
    finally:
        if worker is not None:
            worker.stop()
        redis.stop()
        s3.stop()
        shutil.rmtree(base, ignore_errors=True)

    medians = {k: statistics.median(v) for k, v in figures.items()}
    big_mib, small_n = args.big_mb, args.small
    per_mib = {w: {d: big_mib / medians[f"big_{d}_{w}"] for d in ("up", "down")}
               for w in ("boto3", "jobgate")}  # fmt: skip
    per_file = {w: {d: 1000 * medians[f"small_{d}_{w}"] / small_n for d in ("up", "down")}
                for w in ("boto3", "jobgate")}  # fmt: skip
    table = {
        "big_up_mib_s": {w: per_mib[w]["up"] for w in per_mib},
        "big_down_mib_s": {w: per_mib[w]["down"] for w in per_mib},
        "small_up_ms_per_file": {w: per_file[w]["up"] for w in per_file},
        "small_down_ms_per_file": {w: per_file[w]["down"] for w in per_file},
    }
    ratios = {
        "big_up": per_mib["jobgate"]["up"] / per_mib["boto3"]["up"],
        "big_down": per_mib["jobgate"]["down"] / per_mib["boto3"]["down"],
        "small_up": per_file["boto3"]["up"] / per_file["jobgate"]["up"],
        "small_down": per_file["boto3"]["down"] / per_file["jobgate"]["down"],
    }
    print(f"\n{'figure':<24} {'boto3':>10} {'jobgate':>10} {'jobgate/boto3 speed':>20}")
    for (name, row), ratio in zip(table.items(), ratios.values(), strict=True):
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
