"""The world of ``test_statement_shapes``: models with every relationship kind a statement can
reach (many-to-one, one-to-many, through a link table, a column_property, single-table
inheritance), their rows, the rules, and the oracle (row-level security) answers compare to."""

from __future__ import annotations

import logging
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

from fastapi import FastAPI
from sqlalchemy import (
    Column,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Table,
    column,
    delete,
    func,
    insert,
    literal_column,
    select,
    tablesample,
    true,
    values,
)
from sqlalchemy.exc import CompileError, DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    aliased,
    column_property,
    foreign,
    mapped_column,
    relationship,
)
from sqlalchemy.types import TypeDecorator, UserDefinedType

from capebase import AuthContext, CapeBase, UnfilterableStatementError
from capebase.testing import app_client
from tests._databases import DbKind


class Base(DeclarativeBase):
    pass


note_tag = Table(
    "sh_note_tag",
    Base.metadata,
    # No foreign keys: the oracle deletes hidden notes and keeps their links, which a user
    # session reads freely (an association table no rule governs).
    Column("note_id", Integer, primary_key=True),
    Column("tag_id", Integer, primary_key=True),
)


membership = Table(
    "sh_membership",
    Base.metadata,
    Column("team_id", Integer, primary_key=True),
    Column("user", String(40), primary_key=True),
)


class Team(Base):
    __tablename__ = "sh_team"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(40))
    notes: Mapped[list[Note]] = relationship(back_populates="team", order_by="Note.id")


class Note(Base):
    __tablename__ = "sh_note"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(String(40))
    locked: Mapped[bool] = mapped_column(default=False)
    team_id: Mapped[int] = mapped_column(ForeignKey("sh_team.id"))
    team: Mapped[Team] = relationship(back_populates="notes")
    tags: Mapped[list[Tag]] = relationship(
        secondary=note_tag,
        primaryjoin=lambda: Note.id == foreign(note_tag.c.note_id),
        secondaryjoin=lambda: Tag.id == foreign(note_tag.c.tag_id),
        back_populates="notes",
        order_by="Tag.id",
    )


class Tag(Base):
    __tablename__ = "sh_tag"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    notes: Mapped[list[Note]] = relationship(
        secondary=note_tag,
        primaryjoin=lambda: Tag.id == foreign(note_tag.c.tag_id),
        secondaryjoin=lambda: Note.id == foreign(note_tag.c.note_id),
        back_populates="tags",
        viewonly=True,
    )


# A count of a team's notes, computed in SQL wherever a Team is loaded.
Team.note_count = column_property(  # type: ignore[attr-defined]
    select(func.count(Note.id)).where(Note.team_id == Team.id).correlate_except(Note)
    .scalar_subquery()
)


class Item(Base):
    """Single-table inheritance: a Book is an Item whose kind is "book"."""

    __tablename__ = "sh_item"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(20))
    __mapper_args__: ClassVar[dict[str, Any]] = {
        "polymorphic_on": "kind",
        "polymorphic_identity": "item",
    }


class Book(Item):
    title: Mapped[str | None] = mapped_column(String(40), nullable=True)
    __mapper_args__: ClassVar[dict[str, Any]] = {"polymorphic_identity": "book"}


ALICE = AuthContext(id="alice")
TEAMS = [(1, "alice", "alice team"), (2, "bob", "bob team")]
NOTES = [  # id, owner, body, locked, team
    (1, "alice", "a1", False, 1),
    (2, "alice", "a2", False, 1),
    (3, "bob", "b-secret", False, 2),
    (4, "bob", "b-locked", True, 1),
    (5, "Alice", "case", False, 2),
]
TAGS = [(1, "red"), (2, "blue")]
LINKS = [(1, 1), (3, 2), (4, 1)]
ITEMS = [(1, "alice", "book", "mine"), (2, "bob", "book", "hidden"), (3, "bob", "item", None)]
HIDDEN = {Note: [3, 5], Team: [2], Item: [2, 3]}
"""What alice may not read: the rows the oracle removes (tags are public, links free)."""


def rules(cape: CapeBase) -> None:
    cape.permission_required(Team, owner_field="owner", actions=["read"])
    cape.permission_required(Note, owner_field="owner", actions=["*"])
    cape.permission_required(Note, where=lambda _ctx: Note.locked.is_(True), actions=["read"])
    cape.permission_required(Tag, role="*", actions=["read"])
    cape.permission_required(Item, owner_field="owner", actions=["read"])
    cape.permission_required(Book, owner_field="owner", actions=["read"])


@dataclass
class World:
    cape: CapeBase
    kind: DbKind

    def session(self) -> AsyncSession:
        return self.cape.get_session(ALICE)


@asynccontextmanager
async def open_world(db_url: str, db_kind: DbKind) -> AsyncIterator[World]:
    """An app with ``rules`` over the rows above; alice's session is ``World.session()``."""
    app = FastAPI()
    cape = CapeBase(app=app, db_url=db_url)
    rules(cape)
    async with app_client(app):
        async with cape.get_privileged_session() as session:
            session.add_all(Team(id=i, owner=o, name=n) for i, o, n in TEAMS)
            await session.flush()
            session.add_all(
                Note(id=i, owner=o, body=b, locked=lk, team_id=t) for i, o, b, lk, t in NOTES
            )
            session.add_all(Tag(id=i, name=n) for i, n in TAGS)
            for i, o, k, title in ITEMS:
                item = Book(id=i, owner=o, title=title) if k == "book" else Item(id=i, owner=o)
                session.add(item)
            await session.flush()
            await session.execute(insert(note_tag), [{"note_id": n, "tag_id": t} for n, t in LINKS])
            await session.commit()
        yield World(cape, db_kind)


def _value(value: Any) -> Any:
    if isinstance(value, Base):
        return (type(value).__name__, value.id)  # type: ignore[attr-defined]
    return value


def _rows(result: Any) -> list[Any]:
    if getattr(result, "returns_rows", True):
        rows = result.unique().all()
        return sorted((tuple(_value(v) for v in row) for row in rows), key=repr)
    return [("rowcount", result.rowcount)]


class _Logged(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


DRIVER_LOGGERS = ("asyncmy", "aiomysql", "pymysql")
"""Drivers that report the database's warnings to ``logging``, not ``warnings`` (asyncmy
logs each MariaDB warning, quoting the value it converted)."""


async def outcome(session: Any, statement: Any) -> tuple[Any, list[str]]:
    """What ``statement`` gives in ``session`` (rows, "refused", or ("failed", why)) and the
    warnings it raised, through ``warnings`` or the driver's log (MariaDB's quote values);
    rolled back."""
    logged = _Logged()
    loggers = [logging.getLogger(name) for name in DRIVER_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(logged)
        if not logger.isEnabledFor(logging.WARNING):
            logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result: Any = _rows(await session.execute(statement))
            except UnfilterableStatementError:
                result = "refused"
            except DBAPIError as error:
                result = ("failed", str(error.orig))
            except CompileError:  # MariaDB: no UPDATE ... RETURNING
                result = ("failed", "unsupported")
            await session.rollback()
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(logged)
            logger.setLevel(level)
    return result, [str(w.message) for w in caught] + logged.messages


async def as_alice(world: World, statement: Any) -> list[Any] | str:
    async with world.session() as session:
        try:
            return _rows(await session.execute(statement))
        except UnfilterableStatementError:
            return "refused"
        except NotImplementedError as error:  # SQLAlchemy has no SQL for it on this database
            return f"unsupported: {error}"


async def oracle(world: World, statement: Any) -> list[Any]:
    """The answer over the rows alice may read only (a privileged session, rolled back)."""
    async with world.cape.get_privileged_session() as session:
        for model, ids in HIDDEN.items():
            await session.execute(delete(model).where(model.id.in_(ids)))  # type: ignore[attr-defined]
        rows = _rows(await session.execute(statement))
        await session.rollback()
    return rows


# Statements of the catalog that take more than an expression to build.


class ColumnSql(TypeDecorator[str]):
    """A type that reads its column through SQL of its own (``column_expression``)."""

    impl = String
    cache_ok = True

    def column_expression(self, col: Any) -> Any:
        return literal_column("(SELECT max(body) FROM sh_note)")


class BindSql(TypeDecorator[str]):
    """A type that binds its values through SQL of its own (``bind_expression``)."""

    impl = String
    cache_ok = True

    def bind_expression(self, bindvalue: Any) -> Any:
        return literal_column("(SELECT max(body) FROM sh_note)")


SQL_IN_PRECISION = "10, 2)) + (SELECT count(*) FROM sh_note) - CAST(0 AS NUMERIC(10"
"""A NUMERIC's precision is written into a CAST as given."""


class NumericOnEachDatabase(TypeDecorator[int]):
    """A decorator of Integer whose type on every database is that NUMERIC."""

    impl = Integer
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        return Numeric(precision=SQL_IN_PRECISION, scale=2)  # type: ignore[arg-type]


class RawType(UserDefinedType[str]):
    """A type whose name is SQL: ``CAST(x AS <whatever it says>)``."""

    cache_ok = True

    def get_col_spec(self, **_kw: Any) -> str:
        return "TEXT) || (SELECT max(body) FROM sh_note"


def recursive_ids() -> Any:
    ids = select(Note.id).where(Note.id == 1).cte("ids", recursive=True)
    return select(ids.union_all(select(Note.id).join(ids, Note.id == ids.c.id + 1)).c.id)


def lateral_first_note() -> Any:
    first = select(Note.body).where(Note.team_id == Team.id).order_by(Note.id).limit(1).lateral()
    return select(Team.name, first.c.body).join(first, true())


def sampled_notes() -> Any:
    return select(aliased(Note, tablesample(Note, func.bernoulli(100))).body)


def values_join() -> Any:
    wanted = values(column("x", Integer), name="wanted").data([(1,), (3,), (5,)])
    return select(wanted.c.x, Note.body).join(Note, Note.id == wanted.c.x)
