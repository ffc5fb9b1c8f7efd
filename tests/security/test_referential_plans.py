"""What ``policy.referential`` says a database's own ON DELETE / ON UPDATE actions write: each
effect exactly (table, operation, old row, new row), for every action and key shape.

``test_cascades`` shows the checks and the change log end to end for CASCADE and SET NULL on
one-column keys; these run the plans against an in-memory SQLite database for what it does not
reach: SET DEFAULT, composite keys, chains of key changes, keys the database matched in
another spelling (issue 17: their mutants survived or had no test).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    Connection,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    text,
)

from capebase.policy.referential import (
    Effect,
    has_delete_actions,
    key_columns,
    on_delete,
    on_key_change,
    referrers,
    run,
)

metadata = MetaData()
team = Table(
    "rp_team", metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(10), unique=True),
)
note = Table(
    "rp_note", metadata,
    Column("id", Integer, primary_key=True),
    Column("team_id", ForeignKey("rp_team.id", ondelete="cascade"), nullable=True),
)
comment = Table(
    "rp_comment", metadata,
    Column("id", Integer, primary_key=True),
    Column("note_id", ForeignKey("rp_note.id", ondelete="Cascade"), nullable=True),
)
pin = Table(
    "rp_pin", metadata,
    Column("id", Integer, primary_key=True),
    Column("team_id", ForeignKey("rp_team.id", ondelete="SET NULL"), nullable=True),
)
badge = Table(
    "rp_badge", metadata,
    Column("id", Integer, primary_key=True),
    Column("team_id", ForeignKey("rp_team.id", ondelete="SET DEFAULT"), server_default="7"),
    Column("other_team", ForeignKey("rp_team.id", ondelete="SET DEFAULT"),
           server_default=text("3 + 4")),
    Column("no_default", ForeignKey("rp_team.id", ondelete="SET DEFAULT"), nullable=True),
)
tag = Table(
    "rp_tag", metadata,
    Column("id", Integer, primary_key=True),
    # NOCASE: SQLite matches keys as MySQL's default collation does
    Column("team_code", String(10, collation="NOCASE"),
           ForeignKey("rp_team.code", onupdate="CASCADE"), nullable=True),
)
padded = Table(  # RTRIM: SQLite ignores trailing spaces as MySQL's PAD SPACE collations do
    "rp_padded", metadata,
    Column("id", Integer, primary_key=True),
    Column("team_code", String(10, collation="RTRIM"),
           ForeignKey("rp_team.code", onupdate="CASCADE"), nullable=True),
)
coded = Table(
    "rp_coded", metadata,
    Column("code", String(10), primary_key=True),
    Column("num", Integer, primary_key=True),
)
coded_child = Table(  # a key of a text and a number, the text matched in another case
    "rp_coded_child", metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(10, collation="NOCASE")),
    Column("num", Integer),
    ForeignKeyConstraint(["code", "num"], ["rp_coded.code", "rp_coded.num"],
                         onupdate="CASCADE"),
)
label = Table(  # refers to tag's key by ON UPDATE CASCADE too: a chain
    "rp_label", metadata,
    Column("id", Integer, primary_key=True),
    Column("tag_id", ForeignKey("rp_tag.id", onupdate="CASCADE", ondelete="CASCADE")),
)
pair = Table(
    "rp_pair", metadata,
    Column("a", Integer, primary_key=True),
    Column("b", Integer, primary_key=True),
)
pair_child = Table(
    "rp_pair_child", metadata,
    Column("id", Integer, primary_key=True),
    Column("a", Integer),
    Column("b", Integer),
    ForeignKeyConstraint(["a", "b"], ["rp_pair.a", "rp_pair.b"], ondelete="CASCADE",
                         onupdate="CASCADE"),
)
plain_child = Table(  # a foreign key without an action: nothing written
    "rp_plain", metadata,
    Column("id", Integer, primary_key=True),
    Column("team_id", ForeignKey("rp_team.id", ondelete="RESTRICT")),
)


@pytest.fixture
def conn() -> Iterator[Connection]:
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(team.insert(), [
            {"id": 1, "code": "ABC"}, {"id": 2, "code": "x"}, {"id": 3, "code": None},
        ])
        connection.execute(note.insert(), [
            {"id": 1, "team_id": 1}, {"id": 2, "team_id": 1}, {"id": 3, "team_id": 2},
        ])
        connection.execute(comment.insert(), [{"id": 1, "note_id": 1}, {"id": 2, "note_id": 3}])
        connection.execute(pin.insert(), [{"id": 1, "team_id": 1}, {"id": 2, "team_id": None}])
        connection.execute(badge.insert(), [
            {"id": 1, "team_id": 1, "other_team": 1, "no_default": 1},
        ])
        connection.execute(tag.insert(), [
            {"id": 1, "team_code": "abc"}, {"id": 2, "team_code": "x"},
        ])
        connection.execute(label.insert(), [{"id": 1, "tag_id": 1}])
        connection.execute(padded.insert(), [{"id": 1, "team_code": "ABC  "}])
        connection.execute(coded.insert(), [{"code": "K", "num": 1}])
        connection.execute(coded_child.insert(), [{"id": 1, "code": "k", "num": 1}])
        connection.execute(pair.insert(), [{"a": 1, "b": 1}, {"a": 1, "b": 2}])
        connection.execute(pair_child.insert(), [
            {"id": 1, "a": 1, "b": 1}, {"id": 2, "a": 1, "b": 2},
        ])
        connection.execute(plain_child.insert(), [{"id": 1, "team_id": 2}])
        yield connection
    engine.dispose()


def _fetch(conn: Connection) -> Any:
    return lambda statement: [dict(r) for r in conn.execute(statement).mappings()]


def _row(table: Table, conn: Connection, **key: Any) -> dict[str, Any]:
    condition = [table.c[k] == v for k, v in key.items()]
    return dict(conn.execute(table.select().where(*condition)).mappings().one())


def _effects(effects: list[Effect]) -> list[tuple[str, str, Any, Any]]:
    return [(e.table.name, e.op, e.old, e.new) for e in effects]


def test_which_tables_have_actions() -> None:
    assert has_delete_actions(team) and has_delete_actions(note) and has_delete_actions(pair)
    assert not has_delete_actions(comment) and not has_delete_actions(plain_child)
    assert key_columns(team) == {"code"}
    assert key_columns(tag) == {"id"} and key_columns(pair) == {"a", "b"}
    assert key_columns(note) == frozenset()
    found = {(r.table.name, r.columns, r.referred, r.ondelete, r.onupdate)
             for r in referrers(team)}
    assert found == {
        ("rp_note", ("team_id",), ("id",), "CASCADE", None),
        ("rp_pin", ("team_id",), ("id",), "SET NULL", None),
        ("rp_badge", ("team_id",), ("id",), "SET DEFAULT", None),
        ("rp_badge", ("other_team",), ("id",), "SET DEFAULT", None),
        ("rp_badge", ("no_default",), ("id",), "SET DEFAULT", None),
        ("rp_tag", ("team_code",), ("code",), None, "CASCADE"),
        ("rp_padded", ("team_code",), ("code",), None, "CASCADE"),
    }


def test_deleting_a_row_cascades_sets_null_and_sets_defaults(conn: Connection) -> None:
    effects = run(on_delete(team, [_row(team, conn, id=1)]), _fetch(conn))
    n1, n2 = _row(note, conn, id=1), _row(note, conn, id=2)
    b1 = _row(badge, conn, id=1)
    assert sorted(_effects([e for e in effects if e.table is not badge]), key=repr) == sorted([
        ("rp_note", "DELETE", n1, None),
        ("rp_note", "DELETE", n2, None),
        ("rp_comment", "DELETE", {"id": 1, "note_id": 1}, None),  # the grandchild
        ("rp_pin", "UPDATE", {"id": 1, "team_id": 1}, {"id": 1, "team_id": None}),
    ], key=repr)
    # SET DEFAULT: each column to its server default (a text one, an expression, none: NULL),
    # one update after the other on the same row
    updates = [e for e in effects if e.table is badge]
    assert [e.old for e in updates] == [b1, *(e.new for e in updates[:-1])]
    assert updates[-1].new == {"id": 1, "team_id": 7, "other_team": 7, "no_default": None}
    assert len(updates) == 3


def test_rows_the_same_write_deletes_are_left_out(conn: Connection) -> None:
    excluded = [(note, (1,)), (comment, (1,))]
    effects = run(on_delete(team, [_row(team, conn, id=1)], excluded), _fetch(conn))
    assert [(e.table.name, e.op, e.old["id"]) for e in effects if e.table is note] == [
        ("rp_note", "DELETE", 2)
    ]
    assert not [e for e in effects if e.table is comment]


def test_a_row_deleted_twice_over_is_one_effect(conn: Connection) -> None:
    """Deleting both notes and their team: the notes are deleted by the write, not again."""
    rows = [_row(note, conn, id=3), _row(note, conn, id=1)]
    effects = run(on_delete(note, rows), _fetch(conn))
    assert sorted((e.table.name, e.op, e.old["id"]) for e in effects) == [
        ("rp_comment", "DELETE", 1), ("rp_comment", "DELETE", 2),
    ]


def test_a_null_key_refers_to_nothing(conn: Connection) -> None:
    assert run(on_delete(team, [_row(team, conn, id=3)]), _fetch(conn)) == []
    old = _row(team, conn, id=3)
    assert run(on_key_change(team, [(old, {**old, "code": "new"})]), _fetch(conn)) == []


def test_an_unchanged_key_writes_nothing(conn: Connection) -> None:
    old = _row(team, conn, id=2)
    assert run(on_key_change(team, [(old, dict(old))]), _fetch(conn)) == []


def test_a_key_change_cascades_to_the_new_key_even_in_another_spelling(
    conn: Connection,
) -> None:
    """Tag 1 holds "abc" and padded 1 "ABC  " for team 1's "ABC" (MySQL matches both): they
    get the new key too; so does a key of a text and a number."""
    old = _row(team, conn, id=1)
    effects = run(on_key_change(team, [(old, {**old, "code": "NEW"})]), _fetch(conn))
    assert sorted(_effects(effects), key=repr) == [
        ("rp_padded", "UPDATE", {"id": 1, "team_code": "ABC  "}, {"id": 1, "team_code": "NEW"}),
        ("rp_tag", "UPDATE", {"id": 1, "team_code": "abc"}, {"id": 1, "team_code": "NEW"}),
    ]
    old = _row(coded, conn, code="K", num=1)
    effects = run(on_key_change(coded, [(old, {"code": "L", "num": 2})]), _fetch(conn))
    assert _effects(effects) == [
        ("rp_coded_child", "UPDATE", {"id": 1, "code": "k", "num": 1},
         {"id": 1, "code": "L", "num": 2}),
    ]


def test_a_key_change_follows_chains_and_composite_keys(conn: Connection) -> None:
    old = _row(tag, conn, id=1)
    effects = run(on_key_change(tag, [(old, {**old, "id": 10})]), _fetch(conn))
    assert _effects(effects) == [
        ("rp_label", "UPDATE", {"id": 1, "tag_id": 1}, {"id": 1, "tag_id": 10}),
    ]
    old = _row(pair, conn, a=1, b=2)
    effects = run(on_key_change(pair, [(old, {"a": 5, "b": 6})]), _fetch(conn))
    assert _effects(effects) == [
        ("rp_pair_child", "UPDATE", {"id": 2, "a": 1, "b": 2}, {"id": 2, "a": 5, "b": 6}),
    ]
    effects = run(on_delete(pair, [_row(pair, conn, a=1, b=1)]), _fetch(conn))
    assert _effects(effects) == [("rp_pair_child", "DELETE", {"id": 1, "a": 1, "b": 1}, None)]
