"""The observability tests' models, a CapeBase built from them, and a /metrics reader."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI, Header
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from capebase import FROM_AUTH_ID, AuthContext, CapeBase, secret_field


class ObsModel(SQLModel, registry=registry()):
    """Tables of the observability tests, in a registry (so a MetaData) of their own."""

    __test__ = False


class Note(ObsModel, table=True):
    """Owned rows: owners do anything with theirs; everyone reads them."""

    __tablename__ = "obs_note"

    id: int | None = Field(default=None, primary_key=True)
    owner_id: FROM_AUTH_ID = Field(index=True, max_length=40)
    title: str = Field(max_length=100)
    done: bool = False


class Account(ObsModel, table=True):
    """Secret fields, marked both ways: ``secret_field`` and the raw column info key."""

    __tablename__ = "obs_account"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=100)
    password_hash: str = secret_field(default="", max_length=200)
    api_key: str | None = Field(
        default=None, max_length=100, sa_column_kwargs={"info": {"capebase_secret": True}}
    )


async def header_auth(
    x_user: str | None = Header(None), x_role: str | None = Header(None)
) -> AuthContext:
    """``X-User`` and ``X-Role`` headers → AuthContext (HTTP and WebSocket alike)."""
    return AuthContext(id=x_user, role=x_role)


def who(user: str | None = None, role: str | None = None) -> dict[str, str]:
    """Headers that make a request act as ``user`` with ``role``."""
    headers = {}
    if user is not None:
        headers["X-User"] = user
    if role is not None:
        headers["X-Role"] = role
    return headers


def make_app(db_url: str, **options: Any) -> tuple[FastAPI, CapeBase]:
    """A FastAPI app publishing Note and Account.

    Notes: everyone reads, owners write theirs. Accounts: role "admin" does anything.
    """
    app = FastAPI()
    cape = CapeBase(app=app, db_url=db_url, get_auth_context=header_auth, **options)
    cape.publish(Note)
    cape.publish(Account)
    cape.permission_required(Note, role="*", actions=["read"])
    cape.permission_required(Note, owner_field="owner_id", actions=["create", "update", "delete"])
    cape.permission_required(Account, role="admin", actions=["*"])
    return app, cape


@dataclass
class Scrape:
    """One scrape of /metrics, parsed."""

    samples: list[tuple[str, dict[str, str], float]]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named ``name`` whose labels include ``labels`` (0 if none)."""
        return sum(
            value
            for sample, sample_labels, value in self.samples
            if sample == name and all(sample_labels.get(k) == v for k, v in labels.items())
        )

    def label_values(self, name: str, label: str) -> set[str]:
        """Every value ``label`` takes in the samples named ``name``."""
        return {labels[label] for sample, labels, _ in self.samples if sample == name}

    def names(self) -> set[str]:
        return {sample for sample, _, _ in self.samples}


def parse(text: str) -> Scrape:
    """Parse the Prometheus text format."""
    return Scrape(
        [
            (sample.name, dict(sample.labels), sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]
    )


async def scrape(client: httpx.AsyncClient, path: str = "/metrics", **kwargs: Any) -> Scrape:
    """GET ``path`` and parse it; fail unless it answered 200 with the Prometheus type."""
    response = await client.get(path, **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)
