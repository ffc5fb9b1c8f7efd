"""Column defaults and onupdate given as SQL (Column(default=<SQL>), onupdate=<SQL>) are
SQL the mapping writes into the INSERT/UPDATE as it compiles; mapper_sql does not look at
them, so a user session's flush (or bulk UPDATE) copies a hidden row into the caller's own.
Also: a model mapped to a SELECT, and with_polymorphic selectables."""
from typing import Any

from _harness import run
from fastapi import FastAPI
from sqlalchemy import ForeignKey, String, func, literal_column, select, text, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from capebase import AuthContext, CapeBase
from capebase.testing import app_client


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "dd_doc"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    secret: Mapped[str] = mapped_column(String(40))


class Copy(Base):
    """Defaults that are SQL: a text() one and a scalar subquery one."""
    __tablename__ = "dd_copy"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    note: Mapped[str] = mapped_column(String(40), default="x")
    by_text: Mapped[str | None] = mapped_column(
        String(40), default=text("(SELECT max(secret) FROM dd_doc)"), nullable=True)
    by_select: Mapped[str | None] = mapped_column(
        String(40), default=select(func.max(Doc.secret)).scalar_subquery(), nullable=True)
    on_update: Mapped[str | None] = mapped_column(
        String(40), onupdate=literal_column("(SELECT max(secret) FROM dd_doc)"), nullable=True)
    on_update_sel: Mapped[str | None] = mapped_column(
        String(40), onupdate=select(func.max(Doc.secret)).scalar_subquery(), nullable=True)


ALICE = AuthContext(id="alice")


async def main(kind, url):
    app = FastAPI()
    cape = CapeBase(app=app, db_url=url)
    cape.permission_required(Doc, owner_field="owner", actions=["*"])
    cape.permission_required(Copy, owner_field="owner", actions=["*"])
    async with app_client(app):
        async with cape.get_privileged_session() as s:
            s.add_all([Doc(id=1, owner="alice", secret="alice-a"), Doc(id=2, owner="bob", secret="zz-bob-secret")])
            await s.commit()
        for name in ("flush INSERT", "flush UPDATE", "bulk UPDATE"):
            if name != "flush INSERT":
                async with cape.get_privileged_session() as s:
                    await s.execute(update(Copy).values(on_update=None, on_update_sel=None)
                                    .execution_options(synchronize_session=False))
                    await s.execute(Copy.__table__.update().values(on_update=None, on_update_sel=None))
                    await s.commit()
            try:
                async with cape.get_session(ALICE) as s:
                    if name == "flush INSERT":
                        s.add(Copy(id=1, owner="alice"))
                        await s.commit()
                    elif name == "flush UPDATE":
                        c = (await s.execute(select(Copy).where(Copy.id == 1))).scalar_one()
                        c.note = "changed"
                        await s.commit()
                    else:
                        await s.execute(update(Copy).where(Copy.id == 1).values(note="bulk"))
                        await s.commit()
                async with cape.get_session(ALICE) as s:
                    row = (await s.execute(select(Copy.by_text, Copy.by_select, Copy.on_update, Copy.on_update_sel))).all()
                print(name, "-> alice reads", row)
            except Exception as e:
                print(name, "-> refused/failed:", type(e).__name__, str(e)[:200])
            

run(main)
