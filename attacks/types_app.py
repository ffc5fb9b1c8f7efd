"""An app with many column kinds for the client attacks (BigInteger key, int enum, date, time,
lists, optional foreign text...). ``python -m attacks.types_app``; env PORT, TS_APP_DB."""

from __future__ import annotations

import enum
import os
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import uvicorn
from fastapi import FastAPI
from sqlalchemy import JSON, BigInteger, Column
from sqlmodel import Field, SQLModel

from capebase import FROM_AUTH_ID, CapeBase
from capebase.auth import PasswordAuth


class Level(enum.IntEnum):
    """An int enum."""

    LOW = 10
    HIGH = 2


class Color(str, enum.Enum):
    """Names order differently from values and from declaration."""

    ZULU = "apple"
    ALPHA = "zebra"
    MIKE = "mango"


class Big(SQLModel, table=True):
    """A BigInteger key the client must keep exact."""

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    owner: FROM_AUTH_ID
    counter: int = Field(default=0, sa_type=BigInteger)
    day: date | None = None
    at: time | None = None
    naive: datetime | None = None
    span: timedelta | None = None
    price: Decimal = Field(default=Decimal("0"), max_digits=15, decimal_places=4)
    ratio: float = 0.0
    level: Level = Level.LOW
    color: Color = Color.ZULU
    tags: list[str] | None = Field(default=None, sa_type=JSON)
    blob: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    flag: bool | None = None


class Doc(SQLModel, table=True):
    """A string key with odd characters."""

    slug: str = Field(primary_key=True)
    owner: FROM_AUTH_ID
    title: str = ""


app = FastAPI(title="attack types app")
auth = PasswordAuth(secret=os.environ.get("CAPEBASE_SECRET", "x" * 64), dev=True,
                    access_token_lifetime=timedelta(seconds=float(os.environ.get("TS_APP_TOKEN_LIFETIME", "900"))),
                    max_failed_logins=1000, max_failed_logins_per_address=1000)
db = os.environ.get("TS_APP_DB", "types.db")
cape = CapeBase(app=app, db_path=db if "://" in db else f"sqlite+aiosqlite:///{db}", auth=auth)
cape.publish(Big)
cape.publish(Doc)
for model in (Big, Doc):
    cape.permission_required(model, role="*", actions=["read"])
    cape.permission_required(model, owner_field="owner", actions=["create", "update", "delete"])


@app.on_event("startup")
async def accounts() -> None:
    """alice, password alice-password."""
    from capebase.auth.builtin import AccountExistsError

    try:
        await auth.create_user("alice@example.com", "alice-password", username="alice")
    except AccountExistsError:
        pass


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), log_level="warning")
