"""A column type with bind_expression (SQL of its own around each bound value) is to be
refused in user sessions; mapper_sql runs only from do_orm_execute, so a flush that never ran
a statement on the model (add + commit) writes the type's SQL into its INSERT/UPDATE."""
from typing import Any

from _harness import run
from fastapi import FastAPI
from sqlalchemy import String, literal_column, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from capebase import AuthContext, CapeBase
from capebase.testing import app_client


class BindSql(TypeDecorator[str]):
    impl = String
    cache_ok = True

    def bind_expression(self, bindvalue: Any) -> Any:
        return literal_column("(SELECT max(secret) FROM bx_doc)")


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "bx_doc"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    secret: Mapped[str] = mapped_column(String(40))


class Stamp(Base):
    __tablename__ = "bx_stamp"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    value: Mapped[str] = mapped_column(BindSql(40))


ALICE = AuthContext(id="alice")


async def main(kind, url):
    app = FastAPI()
    cape = CapeBase(app=app, db_url=url)
    cape.permission_required(Doc, owner_field="owner", actions=["*"])
    cape.permission_required(Stamp, owner_field="owner", actions=["*"])
    async with app_client(app):
        async with cape.get_privileged_session() as s:
            s.add_all([Doc(id=1, owner="alice", secret="alice-a"), Doc(id=2, owner="bob", secret="zz-bob-secret")])
            await s.commit()
        try:
            async with cape.get_session(ALICE) as s:
                s.add(Stamp(id=1, owner="alice", value="anything"))
                await s.commit()
            print("flush INSERT accepted")
        except Exception as e:
            print("flush INSERT refused:", type(e).__name__, str(e)[:150])
        async with cape.get_privileged_session() as s:
            print("stored row:", (await s.execute(Stamp.__table__.select())).all())
        try:
            async with cape.get_session(ALICE) as s:
                print("alice select:", (await s.execute(select(Stamp.id))).all())
        except Exception as e:
            print("alice select refused:", type(e).__name__, str(e)[:120])


run(main)
