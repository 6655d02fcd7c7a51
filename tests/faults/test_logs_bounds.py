"""`jobgate.logs` takes only what it can serve: a crafted message with a negative offset, an
oversized or empty chunk, an unknown stream or a negative array index is answered with a
SpecInvalidError naming the argument, and a large output reaches the client whole, in
chunks of at most routing.LOGS_MAX_BYTES.

Measured figures are printed as ``FIGURE`` lines (``pytest -s``) for docs/reliability.md.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from jobgate.client import Gateway, Job, JobSpec, JobStatus, SpecInvalidError, routing
from tests.support.waiting import TIMEOUT_S
from tests.support.workers import ProfileFactory, WorkerFactory

OUTPUT_BYTES = 5_000_000
#: One line of the job's output; multi-byte characters, so that chunk ends split some.
LINE = "0123456789 ünïcödé abcdefghijklmnopqrstuvwxyz\n"


@pytest.fixture
def big_output(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory
) -> tuple[Job, str]:
    """A finished job whose stdout is OUTPUT_BYTES long, and that output."""
    start_worker(make_profile())
    lines = OUTPUT_BYTES // len(LINE.encode())
    expected = LINE * lines
    command = f"yes '{LINE.rstrip()}' | head -n {lines}"
    job = gateway.submit(JobSpec(name="big", command=command), cluster="local")
    assert job.wait(timeout_s=TIMEOUT_S).status is JobStatus.SUCCEEDED
    return job, expected


def _crafted(gateway: Gateway, args: list[Any]) -> dict[str, Any]:
    """The answer to a `jobgate.logs` message sent as is, past the client's checks."""
    result = gateway.celery.send_task(routing.LOGS, args=args, queue=routing.queue("local"))
    answer: dict[str, Any] = result.get(timeout=TIMEOUT_S, propagate=False)
    assert result.successful(), answer
    return answer


#: Crafted (stream, offset, index, max_bytes) and what the answer must say.
CRAFTED = [
    (("stdout", -5, None, 1000), "argument offset=-5: Input should be greater than or equal"),
    (("stdout", 0, None, 10**9), "argument max_bytes=1000000000: Input should be less than"),
    (("stdout", 0, None, routing.LOGS_MAX_BYTES + 1), "argument max_bytes=1048577: Input"),
    (("stdout", 0, None, 0), "argument max_bytes=0: Input should be greater than or equal"),
    (("stdin", 0, None, 1000), "argument stream='stdin': Input should be 'stdout' or"),
    (("stdout", 0, -1, 1000), "argument index=-1: Input should be greater than or equal"),
    (("stdout", "0", None, 1000), "argument offset='0': Input should be a valid integer"),
]


def test_crafted_logs_messages_are_answered_with_errors_naming_the_argument(
    gateway: Gateway, big_output: tuple[Job, str]
) -> None:
    job, _ = big_output
    for args, named in CRAFTED:
        answer = _crafted(gateway, [job.id, *args])
        assert "data" not in answer, args
        assert answer["error"]["type"] == "SpecInvalidError", answer
        assert answer["error"]["message"].startswith("jobgate.logs: "), answer
        assert named in answer["error"]["message"], answer
    # The worker still serves logs within the bounds.
    assert _crafted(gateway, [job.id, "stdout", 0, None, 10])["data"] == LINE[:10]


def test_a_big_output_arrives_whole_in_chunks_within_the_cap(
    gateway: Gateway, big_output: tuple[Job, str]
) -> None:
    job, expected = big_output
    started = time.monotonic()
    chunks = list(job.logs())
    took_s = time.monotonic() - started
    sizes = [len(chunk.encode()) for chunk in chunks]
    assert "".join(chunks) == expected
    assert max(sizes) <= routing.LOGS_MAX_BYTES
    assert len(chunks) >= OUTPUT_BYTES // routing.LOGS_MAX_BYTES
    with pytest.raises(SpecInvalidError, match="index must be an array index"):
        next(job.logs(index=-1))
    print(
        f"FIGURE logs-5mb: {sum(sizes)} bytes in {len(chunks)} chunks of at most "
        f"{max(sizes)} bytes, read in {took_s:.2f} s"
    )
