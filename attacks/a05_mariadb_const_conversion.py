"""MariaDB strict mode: an int column compared with a non-numeric string in a bulk UPDATE
fails only if some row is compared, so it tells whether a hidden row exists (row-existence
oracle); and string-vs-number BETWEEN."""
from _harness import run
from sqlalchemy import update, delete

from tests.security._shapes import Note, open_world, outcome


async def main(kind, url):
    async with open_world(url, kind) as world:
        probes = {
            "id==3 and team_id=='x'": update(Note).where(Note.id == 3, Note.team_id == "x").values(locked=False),
            "id==99 and team_id=='x'": update(Note).where(Note.id == 99, Note.team_id == "x").values(locked=False),
            "id==3 and body between 1 and 2": update(Note).where(Note.id == 3, Note.body.between(1, 2)).values(locked=False),
        }
        for name, stmt in probes.items():
            async with world.session() as s:
                mine = await outcome(s, stmt)
            async with world.cape.get_privileged_session() as s:
                await s.execute(Note.__table__.delete().where(Note.id.in_([3, 5])))
                oracle = await outcome(s, stmt)
            print(f"{'LEAK' if mine != oracle else 'ok'} {name}: alice={mine} oracle={oracle}")


run(main)
