"""(HELD) relationship(secondary=<a SELECT or an aliased JOIN>) is SQL the mapping writes into every load of the
relationship; mapper_sql checks primaryjoin/secondaryjoin/order_by but not secondary."""
import os
from _harness import run
MODE = os.environ.get("MODE", "join")
from fastapi import FastAPI
from sqlalchemy import Column, ForeignKey, Integer, String, Table, literal_column, select
from sqlalchemy.orm import foreign, DeclarativeBase, Mapped, joinedload, mapped_column, relationship, selectinload

from capebase import AuthContext, CapeBase
from capebase.testing import app_client

HIDDEN_EXISTS = "(SELECT count(*) FROM sx_doc WHERE secret = 'bob-secret')"


class Base(DeclarativeBase):
    pass


link = Table("sx_link", Base.metadata, Column("folder_id", Integer, primary_key=True),
             Column("doc_id", Integer, primary_key=True))
# the link rows, but only while bob's hidden doc exists
flag = Table("sx_flag", Base.metadata, Column("id", Integer, primary_key=True))
if MODE in ("join", "rawjoin"):
    # a Join as secondary: its ON clause is SQL (reads the hidden row); columns are link's
    probe = link.join(flag, literal_column(HIDDEN_EXISTS) == flag.c.id)
    probe = probe.alias("probe")

else:
    probe = select(link.c.folder_id, link.c.doc_id).where(literal_column(HIDDEN_EXISTS) == 1).subquery("probe")


COLS = probe.c


class Doc(Base):
    __tablename__ = "sx_doc"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    secret: Mapped[str] = mapped_column(String(40))


class Folder(Base):
    __tablename__ = "sx_folder"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    docs: Mapped[list[Doc]] = relationship(
        secondary=probe, primaryjoin=lambda: Folder.id == COLS.folder_id,
        secondaryjoin=lambda: Doc.id == COLS.doc_id, viewonly=True)


ALICE = AuthContext(id="alice")


async def main(kind, url):
    app = FastAPI()
    cape = CapeBase(app=app, db_url=url)
    cape.permission_required(Doc, owner_field="owner", actions=["read"])
    cape.permission_required(Folder, owner_field="owner", actions=["read"])
    async with app_client(app):
        async with cape.get_privileged_session() as s:
            s.add_all([Folder(id=1, owner="alice"), Doc(id=1, owner="alice", secret="a"),
                       Doc(id=3, owner="bob", secret="bob-secret")])
            await s.flush()
            await s.execute(link.insert().values(folder_id=1, doc_id=1))
            await s.execute(flag.insert().values(id=1))
            await s.commit()
        for name, stmt in {
            "joinedload": select(Folder).options(joinedload(Folder.docs)),
            "selectinload": select(Folder).options(selectinload(Folder.docs)),
            "join": select(Doc.id).select_from(Folder).join(Folder.docs),
        }.items():
            try:
                async with cape.get_session(ALICE) as s:
                    r = (await s.execute(stmt)).unique().all()
                    if name != "join":
                        r = [len(f.docs) for (f,) in r]
                print(name, "->", r, "(1 = bob's hidden doc exists)")
            except Exception as e:
                print(name, "-> refused/failed:", type(e).__name__, str(e)[:150])


run(main)
