"""Sensitive names, redaction, credential resolution, and scrubbing of known secrets."""

from __future__ import annotations

import logging

import pytest

from jobgate.client.credentials import (
    CredentialRefs,
    ScrubbingFilter,
    SecretScrubber,
    is_sensitive_name,
    redact_sensitive_map,
    resolve_credentials,
)
from jobgate.client.errors import ConfigurationError


@pytest.mark.parametrize(
    ("name", "sensitive"),
    [
        ("AWS_SECRET_ACCESS_KEY", True), ("SECRETS_PATH", False), ("API_KEY", True),
        ("KEYBOARD_LAYOUT", False), ("MONKEY", False), ("apiToken", True), ("db_password", True),
        ("PASSWD", True), ("MY_CREDENTIAL", True), ("GOOGLE_APPLICATION_CREDENTIALS", False),
        ("TOKENIZER", False), ("githubTOKEN", True), ("HOME", False), ("sshKeyPath", True),
    ],
)  # fmt: skip
def test_sensitive_names_match_whole_words(name: str, sensitive: bool) -> None:
    assert is_sensitive_name(name) is sensitive


def test_redact_sensitive_map() -> None:
    assert redact_sensitive_map(
        {"AWS_SECRET_ACCESS_KEY": "x", "SECRETS_PATH": "/run/s", "EMPTY": None,
         "nested": {"token": "y", "region": "eu"}}
    ) == {"AWS_SECRET_ACCESS_KEY": "<redacted>", "SECRETS_PATH": "/run/s", "EMPTY": "<unset>",
          "nested": {"token": "<redacted>", "region": "eu"}}  # fmt: skip


ENV = {"AWS_ACCESS_KEY_ID": "AKIAENVENV", "AWS_SECRET_ACCESS_KEY": "env-secret",
       "LAB_KEY_ID": "AKIAPROFILE", "LAB_SECRET": "profile-secret"}  # fmt: skip
REFS = CredentialRefs("env:LAB_KEY_ID", "env:LAB_SECRET")


def test_explicit_arguments_come_first_then_environment_then_profile() -> None:
    given = resolve_credentials(access_key_id="AKIAARGS", secret_access_key="arg-secret",
                                refs=REFS, environ=ENV)  # fmt: skip
    assert (given.access_key_id, given.source) == ("AKIAARGS", "arguments")
    from_env = resolve_credentials(refs=REFS, environ=ENV)
    assert (from_env.secret_access_key, from_env.source) == ("env-secret", "environment")
    profile_only = {k: v for k, v in ENV.items() if not k.startswith("AWS_")}
    from_refs = resolve_credentials(refs=REFS, environ=profile_only)
    assert (from_refs.secret_access_key, from_refs.source) == ("profile-secret", "profile")


def test_credentials_errors_say_how_to_fix() -> None:
    with pytest.raises(ConfigurationError, match="give both access_key_id and secret_access_key"):
        resolve_credentials(access_key_id="AKIA", environ={})
    with pytest.raises(ConfigurationError, match="points to an unset variable LAB_SECRET"):
        resolve_credentials(refs=REFS, environ={"LAB_KEY_ID": "x"})
    with pytest.raises(ConfigurationError, match="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        resolve_credentials(environ={})


def test_credentials_repr_shows_nothing_secret() -> None:
    creds = resolve_credentials(access_key_id="AKIAVERYLONGKEY", secret_access_key="topsecret",
                                session_token="sessiontok")  # fmt: skip
    shown = f"{creds!r} {creds}"
    for secret in ("topsecret", "sessiontok", "AKIAVERYLONGKEY"):
        assert secret not in shown
    assert "source='arguments'" in shown


def test_scrubbing_filter_removes_known_secrets_from_log_records(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scrubber = SecretScrubber()
    scrubber.add(["hunter2-long", "no"])  # too short values are not scrubbed
    logger = logging.getLogger("jobgate.test.scrub")
    logger.addFilter(ScrubbingFilter(scrubber))
    with caplog.at_level(logging.INFO, logger="jobgate.test.scrub"):
        logger.info("connecting with %s as %s", "hunter2-long", "no")
    assert caplog.messages == ["connecting with *** as no"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="jobgate.test.scrub"):
        logger.info("env %(API_TOKEN)s, home %(HOME)s", {"API_TOKEN": "t0k3n", "HOME": "/h"})
    assert caplog.messages == ["env <redacted>, home /h"]
