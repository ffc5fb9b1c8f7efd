"""Table models of the policy tests, in a registry of their own (see tests/models.py for why).

No ``from __future__ import annotations``: SQLModel reads relationship annotations at runtime.
"""

from datetime import UTC, datetime
from typing import Optional

from sqlalchemy.orm import registry
from sqlmodel import Field, Relationship, SQLModel

from capebase import FROM_AUTH_ID

# One registry (so one MetaData) per group of models: CapeBase creates the tables of the
# models a test publishes or names in rules, and creating fewer tables per test is faster.


class TodoBase(SQLModel, registry=registry()):
    __test__ = False


class OrgBase(SQLModel, registry=registry()):
    __test__ = False


class LevelBase(SQLModel, registry=registry()):
    __test__ = False


class TeamBase(SQLModel, registry=registry()):
    __test__ = False


class BareBase(SQLModel, registry=registry()):
    __test__ = False


class PropBase(SQLModel, registry=registry()):
    __test__ = False


class LedgerBase(SQLModel, registry=registry()):
    __test__ = False


def utc_now() -> datetime:
    return datetime.now(UTC)


class Todo(TodoBase, table=True):
    """The seed README's Todo."""

    __tablename__ = "pol_todo"

    id: int | None = Field(default=None, primary_key=True)
    user_id: FROM_AUTH_ID = Field(index=True, max_length=40)
    task: str = Field(max_length=100)
    is_complete: bool = False
    inserted_at: datetime = Field(default_factory=utc_now)


class OrgDoc(OrgBase, table=True):
    """Rows scoped by organisation, for context_fields rules."""

    __tablename__ = "pol_org_doc"

    id: int | None = Field(default=None, primary_key=True)
    org_id: str = Field(index=True, max_length=40)
    title: str = Field(max_length=100)


class LevelDoc(LevelBase, table=True):
    """Rows with a clearance level, for where rules."""

    __tablename__ = "pol_level_doc"

    id: int | None = Field(default=None, primary_key=True)
    level: int
    title: str = Field(max_length=100)


class Team(TeamBase, table=True):
    """The "one" side of a relationship whose both ends have rules."""

    __tablename__ = "pol_team"

    id: int | None = Field(default=None, primary_key=True)
    owner: str = Field(max_length=40)
    name: str = Field(default="", max_length=100)
    notes: list["Note"] = Relationship(back_populates="team")


class Note(TeamBase, table=True):
    """The "many" side: owned rows in teams, with a nullable flag for where rules."""

    __tablename__ = "pol_note"

    id: int | None = Field(default=None, primary_key=True)
    owner: FROM_AUTH_ID = Field(index=True, max_length=40)
    body: str = Field(default="", max_length=100)
    locked: bool | None = None
    team_id: int | None = Field(default=None, foreign_key="pol_team.id")
    team: Optional["Team"] = Relationship(back_populates="notes")


class Bare(BareBase, table=True):
    """A model no rule names: default deny."""

    __tablename__ = "pol_bare"

    id: int | None = Field(default=None, primary_key=True)
    value: str = Field(default="", max_length=100)


class Prop(PropBase, table=True):
    """Every kind of column the property test generates values for; all nullable."""

    __tablename__ = "pol_prop"

    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    owner: str | None = Field(default=None, max_length=20)
    org: str | None = Field(default=None, max_length=20)
    name: str | None = Field(default=None, max_length=20)
    team: int | None = None
    level: int | None = None
    flag: bool | None = None


class Ledger(LedgerBase, table=True):
    """The stateful test's table."""

    __tablename__ = "pol_ledger"

    id: int | None = Field(default=None, primary_key=True)
    owner: FROM_AUTH_ID = Field(index=True, max_length=40)
    org: str = Field(max_length=20)
    level: int
    title: str = Field(default="", max_length=100)
