"""MariaDB (strict mode): in a bulk UPDATE/DELETE, a text column compared with a number
converts every row the scan meets, hidden ones included, and FAILS quoting the hidden text
("Truncated incorrect DOUBLE value: 'b-secret'"): an error oracle that reads hidden values.
fallible treats `=` as unable to fail (_SAFE_OPERATORS) unless both sides are bare columns of
different types (_mixes_types); a bind of another Python type is not looked at.
(In a SELECT the same conversion only warns: asyncmy logs the warning, quoting the value.)"""
from _harness import run
from sqlalchemy import String, delete, select, type_coerce, update

from tests.security._shapes import Note, Team, open_world, outcome


async def main(kind, url):
    async with open_world(url, kind) as world:
        probes = {
            "UPDATE where id==3 and body==5": update(Note).where(Note.id == 3, Note.body == 5).values(locked=False),
            "UPDATE where id==3 and body IN (5,6)": update(Note).where(Note.id == 3, Note.body.in_([5, 6])).values(locked=False),
            "UPDATE where id==3 and body==type_coerce(id,String)": update(Note).where(
                Note.id == 3, Note.body == type_coerce(Note.team_id, String)).values(locked=False),
            # control: a visible-only id gives no error
            "UPDATE where id==1 and body==5": update(Note).where(Note.id == 1, Note.body == 5).values(locked=False),
            "UPDATE where id==99 and body==5": update(Note).where(Note.id == 99, Note.body == 5).values(locked=False),
        }
        for name, stmt in probes.items():
            async with world.session() as s:
                mine = await outcome(s, stmt)
            async with world.cape.get_privileged_session() as s:
                await s.execute(Note.__table__.delete().where(Note.id.in_([3, 5])))
                oracle = await outcome(s, stmt)
            flag = "LEAK" if mine != oracle else "ok"
            print(f"{flag} {name}: alice={mine} oracle(no hidden rows)={oracle}")


run(main)
