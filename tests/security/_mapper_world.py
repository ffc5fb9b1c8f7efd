"""For ``test_mapper_sql``: mappings that write SQL as a statement compiles, each model with a
single way of reading the hidden row (bob's doc, secret "bob-secret")."""

from __future__ import annotations

from typing import Any, ClassVar

from fastapi import FastAPI
from sqlalchemy import (
    Column,
    ForeignKey,
    String,
    Table,
    case,
    func,
    literal_column,
    select,
    text,
    type_coerce,
)
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    column_property,
    deferred,
    foreign,
    mapped_column,
    relationship,
)
from sqlalchemy.types import TypeDecorator

from capebase import AuthContext, CapeBase

LEAK = "(SELECT max(secret) FROM ak_doc)"
"""bob's secret (the largest): what alice may not read."""
HIDDEN_EXISTS = "(SELECT count(*) FROM ak_doc WHERE secret = 'bob-secret')"
"""1 if bob's hidden doc exists: a one-bit oracle."""


class ColumnSql(TypeDecorator[str]):
    """A type reading its column through SQL of its own."""

    impl = String
    cache_ok = True

    def column_expression(self, col: Any) -> Any:
        return literal_column(LEAK)


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "ak_doc"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    secret: Mapped[str] = mapped_column(String(40))
    folder_id: Mapped[int] = mapped_column(ForeignKey("ak_folder.id"))


class Folder(Base):
    """Clean columns; relationships whose join or order is SQL of the app."""

    __tablename__ = "ak_folder"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    probed_docs: Mapped[list[Doc]] = relationship(
        primaryjoin=lambda: (Folder.id == foreign(Doc.folder_id))
        & (literal_column(HIDDEN_EXISTS) == 1),
        viewonly=True,
    )
    ordered_docs: Mapped[list[Doc]] = relationship(
        primaryjoin=lambda: Folder.id == foreign(Doc.folder_id),
        order_by=lambda: case((literal_column(HIDDEN_EXISTS) == 1, -Doc.id), else_=Doc.id),
        viewonly=True,
    )
    typed_children: Mapped[list[Typed]] = relationship(
        primaryjoin=lambda: Folder.id == foreign(Typed.id), viewonly=True
    )


class Typed(Base):
    """A mapped column whose own type reads through SQL."""

    __tablename__ = "ak_typed"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    shadow: Mapped[str] = mapped_column(ColumnSql(40))


class RawProp(Base):
    """column_property of literal SQL."""

    __tablename__ = "ak_rawprop"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))


RawProp.raw = column_property(literal_column(LEAK))  # type: ignore[attr-defined]


class CoercedProp(Base):
    """column_property whose expression is typed with a SQL-writing type."""

    __tablename__ = "ak_coerced"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))


CoercedProp.coerced = column_property(  # type: ignore[attr-defined]
    type_coerce(CoercedProp.owner, ColumnSql)
)


class DeferredRaw(Base):
    """A deferred column_property of literal SQL, loaded by undefer() or on access."""

    __tablename__ = "ak_deferred"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))


DeferredRaw.lazy_raw = deferred(literal_column(LEAK))  # type: ignore[attr-defined]


class Shape(Base):
    """polymorphic_on an expression that reads the hidden row."""

    __tablename__ = "ak_shape"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(20))
    __mapper_args__: ClassVar[dict[str, Any]] = {
        "polymorphic_on": case((literal_column(HIDDEN_EXISTS) == 1, "circle"), else_="square"),
        "polymorphic_identity": "square",
    }


class Circle(Shape):
    __mapper_args__: ClassVar[dict[str, Any]] = {"polymorphic_identity": "circle"}


EVERY_DATABASE = ("sqlite", "postgresql", "mysql", "mariadb")


def _sql_here() -> Any:
    """A plain string type whose variant on each test database reads through SQL: only the
    session's database tells."""
    return String(40).with_variant(ColumnSql(40), *EVERY_DATABASE)


class VariantTyped(Base):
    """A mapped column whose type writes SQL only as its variant on the database."""

    __tablename__ = "ak_varianttyped"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    shadow: Mapped[str] = mapped_column(_sql_here())


class VariantProp(Base):
    """column_property typed with a type that writes SQL only as its variant on the database."""

    __tablename__ = "ak_variantprop"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))


VariantProp.coerced = column_property(  # type: ignore[attr-defined]
    type_coerce(VariantProp.owner, _sql_here())
)


# Mappings that write no SQL of the app's: a user session loads them (and only the rows it may
# read), whatever relationships, properties and types they have.


class Label(String):
    """A type of the app's own that only stands for a string (as SQLModel's ``AutoString``)."""


shelf_tag = Table(
    "ak_shelf_tag",
    Base.metadata,
    Column("shelf_id", ForeignKey("ak_shelf.id"), primary_key=True),
    Column("tag_id", ForeignKey("ak_tag.id"), primary_key=True),
)


class Tag(Base):
    __tablename__ = "ak_tag"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))


class Book(Base):
    __tablename__ = "ak_book"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    shelf_id: Mapped[int] = mapped_column(ForeignKey("ak_shelf.id"))


class Shelf(Base):
    """Relationships by foreign key, through a link table and ordered by a column; a column
    property of a plain expression; a column of the app's own type."""

    __tablename__ = "ak_shelf"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    label: Mapped[str] = mapped_column(Label(40))
    books: Mapped[list[Book]] = relationship(order_by=lambda: Book.id.desc(), viewonly=True)
    tags: Mapped[list[Tag]] = relationship(secondary=shelf_tag, order_by=lambda: Tag.id,
                                           viewonly=True)


Shelf.double = column_property(Shelf.id * 2)  # type: ignore[attr-defined]


class Animal(Base):
    """polymorphic_on a column."""

    __tablename__ = "ak_animal"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(20))
    __mapper_args__: ClassVar[dict[str, Any]] = {
        "polymorphic_on": kind,
        "polymorphic_identity": "animal",
    }


class Cat(Animal):
    __mapper_args__: ClassVar[dict[str, Any]] = {"polymorphic_identity": "cat"}


class Poly(Base):
    """A base that loads its subclasses' columns with it (``with_polymorphic="*"``)."""

    __tablename__ = "ak_poly"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(20))
    __mapper_args__: ClassVar[dict[str, Any]] = {
        "polymorphic_on": "kind", "polymorphic_identity": "poly", "with_polymorphic": "*",
    }


class PolyLeaf(Poly):
    """A subclass whose column_property reads the hidden row: select(Poly) loads it too."""

    __mapper_args__: ClassVar[dict[str, Any]] = {"polymorphic_identity": "leaf"}


PolyLeaf.leak = column_property(literal_column(LEAK))  # type: ignore[attr-defined]


class LateHolder(Base):
    """Loads its LateBase rows with it (a joined eager load: no statement of their own)."""

    __tablename__ = "ak_late_holder"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    items: Mapped[list[LateBase]] = relationship(lazy="joined")


class LateBase(Base):
    """A polymorphic base whose subclass a test maps late (only that test uses it)."""

    __tablename__ = "ak_late"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(20))
    holder_id: Mapped[int] = mapped_column(ForeignKey("ak_late_holder.id"))
    __mapper_args__: ClassVar[dict[str, Any]] = {
        "polymorphic_on": "kind", "polymorphic_identity": "late", "with_polymorphic": "*",
    }


class BindSql(TypeDecorator[str]):
    """A type binding its values through SQL of its own (written into a flush's INSERT)."""

    impl = String
    cache_ok = True

    def bind_expression(self, bindvalue: Any) -> Any:
        return literal_column(LEAK)


class Bound(Base):
    __tablename__ = "ak_bound"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    value: Mapped[str | None] = mapped_column(BindSql(40), nullable=True)


class TextDefault(Base):
    """A column default of SQL text, written into a flush's INSERT."""

    __tablename__ = "ak_text_default"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    note: Mapped[str] = mapped_column(String(40), default="n")
    copied: Mapped[str | None] = mapped_column(String(40), default=text(LEAK), nullable=True)


class SelectDefault(Base):
    """A column default that is a subquery (no SQL text: it reads a table nothing filters)."""

    __tablename__ = "ak_select_default"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    note: Mapped[str] = mapped_column(String(40), default="n")
    copied: Mapped[str | None] = mapped_column(
        String(40), default=select(func.max(Doc.secret)).scalar_subquery(), nullable=True
    )


class SelectOnUpdate(Base):
    """An onupdate that is a subquery: written into a flush's and a bulk UPDATE's SET."""

    __tablename__ = "ak_select_onupdate"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    note: Mapped[str] = mapped_column(String(40), default="n")
    copied: Mapped[str | None] = mapped_column(
        String(40), onupdate=select(func.max(Doc.secret)).scalar_subquery(), nullable=True
    )


class RawOnUpdate(Base):
    """An onupdate of literal SQL."""

    __tablename__ = "ak_raw_onupdate"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    note: Mapped[str] = mapped_column(String(40), default="n")
    copied: Mapped[str | None] = mapped_column(
        String(40), onupdate=literal_column(LEAK), nullable=True
    )


class Stamped(Base):
    """The near-miss: defaults and onupdate that are functions of no table."""

    __tablename__ = "ak_stamped"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    note: Mapped[str] = mapped_column(String(40), default="n")
    made: Mapped[str | None] = mapped_column(String(40), default=func.lower("MADE"))
    touched: Mapped[str | None] = mapped_column(
        String(40), onupdate=func.upper("touched"), nullable=True
    )


ALICE = AuthContext(id="alice")
MODELS = (
    Doc, Folder, Typed, RawProp, CoercedProp, DeferredRaw, Shape, Circle, Poly, PolyLeaf, Bound,
    TextDefault, SelectDefault, SelectOnUpdate, RawOnUpdate, Stamped, VariantTyped, VariantProp,
    Tag, Book, Shelf, Animal, Cat,
)
WRITTEN = (TextDefault, SelectDefault, SelectOnUpdate, RawOnUpdate, Stamped)
"""Models with an ``id``, ``owner`` and ``note``, seeded with alice's row 1."""


def make(db_url: str, app: FastAPI) -> CapeBase:
    cape = CapeBase(app=app, db_url=db_url)
    for model in MODELS:
        writable = model in WRITTEN or model is Bound
        cape.permission_required(
            model, owner_field="owner", actions=["*"] if writable else ["read"]
        )
    return cape


async def seed(cape: CapeBase) -> None:
    async with cape.get_privileged_session() as s:
        s.add_all([Folder(id=1, owner="alice"), Folder(id=2, owner="bob")])
        await s.flush()
        s.add_all([
            Doc(id=1, owner="alice", secret="alice-a", folder_id=1),
            Doc(id=2, owner="alice", secret="alice-b", folder_id=1),
            Doc(id=3, owner="bob", secret="bob-secret", folder_id=2),
            Typed(id=1, owner="alice", shadow="plain"),
            RawProp(id=1, owner="alice"),
            CoercedProp(id=1, owner="alice"),
            DeferredRaw(id=1, owner="alice"),
            Shape(id=1, owner="alice", kind="square"),
            PolyLeaf(id=1, owner="alice"),
            *(model(id=1, owner="alice") for model in WRITTEN),
            VariantTyped(id=1, owner="alice", shadow="plain"),
            VariantProp(id=1, owner="alice"),
            Shelf(id=1, owner="alice", label="mine"),
            Shelf(id=2, owner="bob", label="hidden"),
            Tag(id=1, owner="alice"),
            Tag(id=2, owner="bob"),
            Animal(id=1, owner="alice", kind="animal"),
            Cat(id=2, owner="alice", kind="cat"),
            Cat(id=3, owner="bob", kind="cat"),
        ])
        await s.flush()
        s.add_all([
            Book(id=1, owner="alice", shelf_id=1),
            Book(id=2, owner="alice", shelf_id=1),
            Book(id=3, owner="bob", shelf_id=1),
            Book(id=4, owner="bob", shelf_id=2),
        ])
        await s.execute(shelf_tag.insert(), [
            {"shelf_id": 1, "tag_id": 1}, {"shelf_id": 1, "tag_id": 2},
            {"shelf_id": 2, "tag_id": 1},
        ])
        await s.commit()
