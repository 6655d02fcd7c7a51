"""The S3 server the tests use (SeaweedFS, tests/support/s3.py) does what jobgate's client
relies on: presigned PUTs and multipart part PUTs from urllib (SigV4), POST policy uploads
whose conditions are enforced, S3 error codes; and the TCP proxy of the fault tests cuts
and restores the way to it."""

from __future__ import annotations

import hashlib
import urllib.error

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from scripts import devstack
from tests.support.s3 import S3Bucket, bucket_on, delete_bucket, http, post_policy_upload
from tests.support.tcp_proxy import ProxyServer
from tests.support.waiting import wait_for

MiB = 2**20


def error_code(e: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = e.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_put_get_and_s3_error_codes(s3_bucket: S3Bucket) -> None:
    s3 = s3_bucket.client()
    s3.put_object(Bucket=s3_bucket.bucket, Key="a/b.txt", Body=b"hello")
    assert s3.get_object(Bucket=s3_bucket.bucket, Key="a/b.txt")["Body"].read() == b"hello"
    listed = s3.list_objects_v2(Bucket=s3_bucket.bucket)["Contents"]
    assert [o["Key"] for o in listed] == ["a/b.txt"]

    with pytest.raises(ClientError) as missing_key:
        s3.get_object(Bucket=s3_bucket.bucket, Key="nothing")
    assert error_code(missing_key) == ("NoSuchKey", 404)
    # no bucket is made on upload (weed's default for admins is to make one)
    with pytest.raises(ClientError) as missing_bucket:
        s3.put_object(Bucket=f"{s3_bucket.bucket}-none", Key="k", Body=b"x")
    assert error_code(missing_bucket) == ("NoSuchBucket", 404)

    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": s3_bucket.bucket, "Key": "nothing"}
    )
    reply = http("GET", url)
    assert reply.status == 404
    assert b"<Code>NoSuchKey</Code>" in reply.body


def test_a_wrong_secret_is_refused(s3_bucket: S3Bucket) -> None:
    forged = S3Bucket(s3_bucket.endpoint_url, s3_bucket.access_key, "wrong", s3_bucket.bucket)
    with pytest.raises(ClientError) as refused:
        forged.client().put_object(Bucket=s3_bucket.bucket, Key="k", Body=b"x")
    assert error_code(refused) == ("SignatureDoesNotMatch", 403)


def test_presigned_put_and_get_from_urllib(s3_bucket: S3Bucket) -> None:
    s3 = s3_bucket.client()
    params = {"Bucket": s3_bucket.bucket, "Key": "in/data.bin"}
    content = bytes(range(256)) * 1000
    # urllib adds Content-Type: application/x-www-form-urlencoded; SigV4 does not sign it
    put = http("PUT", s3.generate_presigned_url("put_object", Params=params), content)
    assert put.status == 200, put.body
    assert put.headers["etag"] == f'"{hashlib.md5(content).hexdigest()}"'  # noqa: S324
    get = http("GET", s3.generate_presigned_url("get_object", Params=params))
    assert get.status == 200
    assert get.body == content


def test_multipart_upload_through_presigned_part_urls(s3_bucket: S3Bucket) -> None:
    """What jobgate's client does: the gateway creates the upload and presigns a URL per
    part, the client PUTs the parts with urllib, the gateway completes it from list_parts."""
    s3 = s3_bucket.client()
    key = "in/big.bin"
    parts = [b"a" * (5 * MiB), b"b" * (5 * MiB), b"c" * 1234]
    upload_id = s3.create_multipart_upload(Bucket=s3_bucket.bucket, Key=key)["UploadId"]
    put_etags = []
    for number, content in enumerate(parts, start=1):
        params = {"Bucket": s3_bucket.bucket, "Key": key, "UploadId": upload_id}
        url = s3.generate_presigned_url("upload_part", Params={**params, "PartNumber": number})
        reply = http("PUT", url, content)
        assert reply.status == 200, reply.body
        put_etags.append(reply.headers.get("etag"))
    # SeaweedFS returns each part's ETag on the presigned PUT (the MD5 of the part)
    assert put_etags == [f'"{hashlib.md5(p).hexdigest()}"' for p in parts]  # noqa: S324

    listed = s3.list_parts(Bucket=s3_bucket.bucket, Key=key, UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed] == [
        (n, etag, len(p)) for n, (etag, p) in enumerate(zip(put_etags, parts, strict=True), 1)
    ]
    s3.complete_multipart_upload(
        Bucket=s3_bucket.bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={
            "Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in listed]
        },
    )
    got = s3.get_object(Bucket=s3_bucket.bucket, Key=key)
    assert got["ContentLength"] == sum(len(p) for p in parts)
    assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(b"".join(parts)).digest()


def test_post_policy_upload_enforces_its_conditions(s3_bucket: S3Bucket) -> None:
    s3 = s3_bucket.client()
    presigned = s3.generate_presigned_post(
        s3_bucket.bucket,
        "prefix/${filename}",
        Conditions=[["starts-with", "$key", "prefix/"], ["content-length-range", 0, 1000]],
        ExpiresIn=300,
    )
    ok = post_policy_upload(presigned, b"inside", key="prefix/ok.txt")
    assert ok.status == 204, ok.body
    assert s3.get_object(Bucket=s3_bucket.bucket, Key="prefix/ok.txt")["Body"].read() == b"inside"
    # ${filename} is replaced by the file part's name
    named = post_policy_upload(presigned, b"named")
    assert named.status == 204, named.body

    outside = post_policy_upload(presigned, b"outside", key="other/bad.txt")
    assert outside.status == 403
    assert b"Policy Condition failed" in outside.body
    too_big = post_policy_upload(presigned, b"x" * 1001, key="prefix/big.txt")
    assert too_big.status == 400
    assert b"<Code>EntityTooLarge</Code>" in too_big.body
    forged = {**presigned, "fields": {**presigned["fields"], "x-amz-signature": "0" * 64}}
    bad_signature = post_policy_upload(forged, b"forged", key="prefix/forged.txt")
    assert bad_signature.status == 403
    assert b"SignatureDoesNotMatch" in bad_signature.body

    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket.bucket)["Contents"]]
    assert sorted(keys) == ["prefix/ok.txt", "prefix/upload.bin"]


def test_server_down_then_back_keeps_the_data(s3_server: devstack.S3Server) -> None:
    """restart() (here a crash: SIGKILL) keeps ports, keys and data; S3 answers again."""
    bucket = bucket_on(s3_server)
    s3 = bucket.client(retries={"max_attempts": 1}, connect_timeout=1)
    s3.put_object(Bucket=bucket.bucket, Key="kept", Body=b"still here")
    s3_server.kill()
    with pytest.raises(EndpointConnectionError):
        s3.list_buckets()
    s3_server.start()
    assert s3.get_object(Bucket=bucket.bucket, Key="kept")["Body"].read() == b"still here"
    delete_bucket(s3_server, bucket.bucket)


def test_proxy_block_and_unblock(s3_bucket: S3Bucket) -> None:
    upstream = ("127.0.0.1", int(s3_bucket.endpoint_url.rsplit(":", 1)[1]))
    with ProxyServer(upstream) as proxy:
        s3 = s3_bucket.client(endpoint_url=proxy.url, retries={"max_attempts": 1})
        s3.put_object(Bucket=s3_bucket.bucket, Key="k", Body=b"v" * 100_000)
        assert s3.get_object(Bucket=s3_bucket.bucket, Key="k")["Body"].read() == b"v" * 100_000
        assert proxy.requests == 2
        assert proxy.connections == 1  # boto3 kept the connection alive

        proxy.block()
        with pytest.raises((EndpointConnectionError, ConnectionClosedError)):
            s3.head_object(Bucket=s3_bucket.bucket, Key="k")
        proxy.unblock()
        wait_for(lambda: s3.head_object(Bucket=s3_bucket.bucket, Key="k"), 10, "S3 again")
        assert proxy.connections >= 2


def test_proxy_drops_the_next_request(s3_bucket: S3Bucket) -> None:
    upstream = ("127.0.0.1", int(s3_bucket.endpoint_url.rsplit(":", 1)[1]))
    with ProxyServer(upstream) as proxy:
        url = s3_bucket.client(endpoint_url=proxy.url).generate_presigned_url(
            "put_object", Params={"Bucket": s3_bucket.bucket, "Key": "once"}
        )
        proxy.drop_next(1)
        # a reset with no reply (URLError when it comes while the body is still going out)
        with pytest.raises((ConnectionError, urllib.error.URLError)):
            http("PUT", url, b"first")
        assert proxy.requests == 1
        s3 = s3_bucket.client()
        with pytest.raises(ClientError):
            s3.head_object(Bucket=s3_bucket.bucket, Key="once")  # it never got there
        assert http("PUT", url, b"second").status == 200
        assert (proxy.connections, proxy.requests) == (2, 2)
        assert s3.get_object(Bucket=s3_bucket.bucket, Key="once")["Body"].read() == b"second"
