"""mapper_sql checks the models a statement "can load" through relationships only: a
subclass loaded polymorphically (with_polymorphic="*", or selectin_polymorphic) is not among
them, so its column_property SQL runs in a user session's select(Base)."""
from typing import Any, ClassVar

from _harness import run
from fastapi import FastAPI
from sqlalchemy import String, literal_column, select
from sqlalchemy.orm import DeclarativeBase, Mapped, column_property, mapped_column

from capebase import AuthContext, CapeBase
from capebase.testing import app_client

LEAK = "(SELECT max(secret) FROM sp_doc)"


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "sp_doc"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    secret: Mapped[str] = mapped_column(String(40))


class Shape(Base):
    __tablename__ = "sp_shape"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(20))
    __mapper_args__: ClassVar[dict[str, Any]] = {
        "polymorphic_on": "kind", "polymorphic_identity": "shape", "with_polymorphic": "*"}


class Circle(Shape):
    __mapper_args__: ClassVar[dict[str, Any]] = {"polymorphic_identity": "circle"}


Circle.leak = column_property(literal_column(LEAK))  # type: ignore[attr-defined]

ALICE = AuthContext(id="alice")


async def main(kind, url):
    app = FastAPI()
    cape = CapeBase(app=app, db_url=url)
    cape.permission_required(Doc, owner_field="owner", actions=["read"])
    cape.permission_required(Shape, owner_field="owner", actions=["read"])
    async with app_client(app):
        async with cape.get_privileged_session() as s:
            s.add_all([Doc(id=1, owner="alice", secret="a"), Doc(id=2, owner="bob", secret="zz-bob-secret"),
                       Circle(id=1, owner="alice")])
            await s.commit()
        for name, stmt in {"select(Shape)": select(Shape), "select(Circle)": select(Circle)}.items():
            try:
                async with cape.get_session(ALICE) as s:
                    objs = (await s.execute(stmt)).scalars().all()
                    print(name, "->", [(type(o).__name__, o.__dict__.get("leak")) for o in objs])
            except Exception as e:
                print(name, "-> refused/failed:", type(e).__name__, str(e)[:120])


run(main)
