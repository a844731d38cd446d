"""Structured logs carry the request id and never a secret."""

from __future__ import annotations

import json
import logging

import pytest

from services.common.context import request_id_var
from services.common.logs import JsonFormatter, RedactingFilter


def test_json_line_with_request_id_and_redaction(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("marquee.test")
    record = logger.makeRecord(
        "marquee.test",
        logging.INFO,
        __file__,
        1,
        "signed in",
        (),
        None,
        extra={"password": "hunter2", "refresh_token": "rt", "email": "a@b.c"},
    )
    token = request_id_var.set("rid-1")
    try:
        RedactingFilter().filter(record)
    finally:
        request_id_var.reset(token)
    line = JsonFormatter().format(record)
    body = json.loads(line)
    assert body["request_id"] == "rid-1"
    assert body["password"] == "[redacted]" and body["refresh_token"] == "[redacted]"
    assert body["email"] == "a@b.c"
    assert "hunter2" not in line
