"""The access-log filter: stream credentials never reach a log line, the rest of it stays."""

from __future__ import annotations

import logging

from hypothesis import given
from hypothesis import strategies as st

from capebase.observability.access_log import RedactCredentials, redact

VALUE = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-_.~%", min_size=1)


@given(
    name=st.sampled_from(["access_token", "ticket"]),
    value=VALUE,
    first=st.booleans(),
    rest=st.sampled_from(["", "&limit=1", "&last_event_id=41~38.17.ab"]),
)
def test_a_credential_in_any_position_is_redacted(
    name: str, value: str, first: bool, rest: str
) -> None:
    before = "" if first else "is_complete=true&"
    redacted = redact(f"/todo/subscribe?{before}{name}={value}{rest}")
    assert redacted == f"/todo/subscribe?{before}{name}=[redacted]{rest}"


def test_the_filter_rewrites_uvicorns_arguments_and_keeps_other_parameters() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/todo/subscribe?access_token=eyJ.x.y&mytoken=1", "1.1", 200),
        None,
    )
    assert RedactCredentials().filter(record)
    assert record.getMessage() == (
        '127.0.0.1:5000 - "GET /todo/subscribe?access_token=[redacted]&mytoken=1 HTTP/1.1" 200'
    )
