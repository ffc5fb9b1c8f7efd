"""A bulk update(Model) in a user session renders the mapping's onupdate SQL into its SET
clause (SQLAlchemy adds it as the statement compiles): literal SQL there copies a hidden row
into the caller's own."""
from _harness import run
from fastapi import FastAPI
from sqlalchemy import String, literal_column, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from capebase import AuthContext, CapeBase
from capebase.testing import app_client


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "bo_doc"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    secret: Mapped[str] = mapped_column(String(40))


class Stamp(Base):
    __tablename__ = "bo_stamp"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    note: Mapped[str] = mapped_column(String(40))
    touched: Mapped[str | None] = mapped_column(
        String(40), onupdate=literal_column("(SELECT max(secret) FROM bo_doc)"), nullable=True)


ALICE = AuthContext(id="alice")


async def main(kind, url):
    app = FastAPI()
    cape = CapeBase(app=app, db_url=url)
    cape.permission_required(Doc, owner_field="owner", actions=["*"])
    cape.permission_required(Stamp, owner_field="owner", actions=["*"])
    async with app_client(app):
        async with cape.get_privileged_session() as s:
            s.add_all([Doc(id=1, owner="alice", secret="alice-a"),
                       Doc(id=2, owner="bob", secret="zz-bob-secret"),
                       Stamp(id=1, owner="alice", note="n")])
            await s.commit()
        try:
            async with cape.get_session(ALICE) as s:
                await s.execute(update(Stamp).where(Stamp.id == 1).values(note="bulk"))
                await s.commit()
            async with cape.get_session(ALICE) as s:
                print("bulk UPDATE accepted; alice reads:", (await s.execute(select(Stamp.touched))).all())
        except Exception as e:
            print("refused/failed:", type(e).__name__, str(e)[:200])


run(main)
