"""schemathesis against a model with a column of every common type: no schema-violating body
is accepted, no answer breaks its documented schema, no 5xx. On every database."""

from __future__ import annotations

import enum
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.python.asgi import shutdown_lifespans
from sqlalchemy import JSON, BigInteger, Column, Text
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from capebase import CapeBase
from tests.apps import make_cape

EXAMPLES = 40
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance,
          negative_data_rejection]


class FuzzModel(SQLModel, registry=registry()):
    __test__ = False


class Colour(enum.StrEnum):
    RED = "red"
    GREEN = "green"


class Sample(FuzzModel, table=True):
    __tablename__ = "fuzz_sample"

    id: int | None = Field(default=None, primary_key=True)
    count: int = 0
    big: int = Field(default=0, sa_type=BigInteger)
    ratio: float = 0.0
    price: Decimal = Field(default=Decimal("0"), max_digits=12, decimal_places=2)
    done: bool = False
    name: str = Field(default="", max_length=100)
    text: str | None = Field(default=None, sa_column=Column(Text))
    day: date | None = None
    at: time | None = None
    moment: datetime | None = None
    token: uuid.UUID | None = None
    colour: Colour = Colour.RED
    meta: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    tags: list[str] | None = Field(default=None, sa_column=Column(JSON))


@pytest.fixture
def fuzzed(db_url: str) -> Iterator[tuple[FastAPI, CapeBase]]:
    app, cape = make_cape(db_url)
    cape.publish(Sample)
    cape.permission_required(Sample, actions=["*"])
    try:
        yield app, cape
    finally:
        shutdown_lifespans()


def test_no_schema_violating_body_is_accepted(fuzzed: tuple[FastAPI, CapeBase]) -> None:
    app, _cape = fuzzed
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    statuses: Counter[str] = Counter()
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path.endswith("/subscribe"):
            continue
        strategy = st.one_of(
            operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
            operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        )

        @given(case=strategy)
        @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck))
        def call(case: Any) -> None:
            response = case.call()
            case.validate_response(response, checks=CHECKS)
            statuses[f"{case.method.upper()} {response.status_code}"] += 1

        try:
            call()
        except BaseException as exc:
            failures.append(str(exc)[:1500])
    print(dict(sorted(statuses.items())))
    print("\n".join(failures))
    assert failures == []
