"""Models, rows and rules of the related-row tests (``expand=``, filters and sorts on related
fields), and the same rules in plain Python: what each caller may read, computed from the rows
without capebase, for the tests to compare the routes' answers with."""

# No `from __future__ import annotations`: SQLModel reads Relationship annotations.

from typing import Any

from sqlmodel import Field, Relationship

from capebase import AuthContext, CapeBase, secret_field
from tests.models import TestModel


class ExpProject(TestModel, table=True):
    __tablename__ = "exp_project"

    id: int | None = Field(default=None, primary_key=True)
    name: str
    owner: str
    public: bool = False
    secret_note: str = secret_field(default="")
    tasks: list["ExpTask"] = Relationship(back_populates="project")


class ExpLink(TestModel, table=True):
    """The link table of a many-to-many relation, which cannot be expanded."""

    __tablename__ = "exp_link"

    task_id: int = Field(foreign_key="exp_task.id", primary_key=True)
    tag_id: int = Field(foreign_key="exp_tag.id", primary_key=True)


class ExpTag(TestModel, table=True):
    __tablename__ = "exp_tag"

    id: int | None = Field(default=None, primary_key=True)
    label: str = ""


class ExpTask(TestModel, table=True):
    """``project``: a Relationship (many-to-one); ``parent``: a foreign key with none, to the
    same table; ``comments``: one-to-many; ``labels``: to a model never published; ``tags``:
    many-to-many."""

    __tablename__ = "exp_task"

    id: int | None = Field(default=None, primary_key=True)
    title: str
    owner: str
    hidden: bool = False
    project_id: int | None = Field(default=None, foreign_key="exp_project.id")
    parent_id: int | None = Field(default=None, foreign_key="exp_task.id")
    project: ExpProject | None = Relationship(back_populates="tasks")
    comments: list["ExpComment"] = Relationship(back_populates="task")
    labels: list["ExpLabel"] = Relationship()
    tags: list[ExpTag] = Relationship(link_model=ExpLink)


class ExpComment(TestModel, table=True):
    __tablename__ = "exp_comment"

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="exp_task.id")
    body: str
    author: str
    public: bool = False
    task: ExpTask | None = Relationship(back_populates="comments")


class ExpLabel(TestModel, table=True):
    """Related to ExpTask by a Relationship, and never published."""

    __tablename__ = "exp_label"

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="exp_task.id")
    text: str = ""


SECRET = "s3cret-note"

PROJECTS = [
    ExpProject(id=1, name="Alpha", owner="alice", public=True, secret_note=SECRET),
    ExpProject(id=2, name="Beta", owner="alice", public=False, secret_note=SECRET),
    ExpProject(id=3, name="Gamma", owner="bob", public=True, secret_note=SECRET),
    ExpProject(id=4, name="Delta", owner="bob", public=False, secret_note=SECRET),
    # the name of a public project, on a private one: a filter on it must not tell them apart
    ExpProject(id=5, name="Alpha", owner="bob", public=False, secret_note=SECRET),
    ExpProject(id=6, name="épée", owner="carol", public=True, secret_note=SECRET),
]
PROJECT_IDS = [None, *(p.id for p in PROJECTS)]
OWNERS = ("alice", "bob")


def _tasks() -> list[ExpTask]:
    """Every project (or none) x owner x hidden; every third task has a parent two before."""
    tasks = []
    for project_id in PROJECT_IDS:
        for owner in OWNERS:
            for hidden in (False, True):
                n = len(tasks) + 1
                parent = n - 2 if n > 2 and n % 3 == 0 else None
                tasks.append(ExpTask(id=n, title=f"t{n}", owner=owner, hidden=hidden,
                                     project_id=project_id, parent_id=parent))
    return tasks


TASKS = _tasks()
AUTHORS = ("alice", "bob", "carol")


def _comments() -> list[ExpComment]:
    """0 to 4 comments per task, by each author in turn, public or not in turn."""
    comments = []
    for task in TASKS:
        assert task.id is not None
        for _ in range(task.id % 5):
            n = len(comments) + 1
            comments.append(ExpComment(
                id=n, task_id=task.id, body="hello" if n % 4 == 0 else f"c{n}",
                author=AUTHORS[n % 3], public=n % 2 == 0,
            ))
    return comments


COMMENTS = _comments()

# -- the rules, for capebase ------------------------------------------------------------------


def publish_all(cape: CapeBase) -> None:
    """Publish the models (not ExpLabel, nor ExpLink, whose key has two columns) with their
    read rules."""
    for model in (ExpProject, ExpTask, ExpComment, ExpTag):
        cape.publish(model)
    cape.permission_required(ExpProject, where=lambda ctx: ExpProject.public.is_(True),
                             actions=["read"])
    cape.permission_required(ExpProject, owner_field="owner", actions=["read"])
    cape.permission_required(ExpTask, where=lambda ctx: ExpTask.hidden.is_(False),
                             actions=["read"])
    cape.permission_required(ExpTask, owner_field="owner", actions=["read"])
    cape.permission_required(ExpComment, where=lambda ctx: ExpComment.public.is_(True),
                             actions=["read"])
    cape.permission_required(ExpComment, owner_field="author", actions=["read"])
    for model in (ExpProject, ExpTask, ExpComment, ExpTag):
        cape.permission_required(model, role="admin", actions=["read"])


async def insert_all(cape: CapeBase) -> None:
    async with cape.get_privileged_session() as session:
        session.add_all([ExpProject(**p.model_dump()) for p in PROJECTS])
        await session.flush()
        session.add_all([ExpTask(**t.model_dump()) for t in TASKS])
        await session.flush()
        session.add_all([ExpComment(**c.model_dump()) for c in COMMENTS])
        await session.commit()


# -- the same rules, in Python ----------------------------------------------------------------


def can_read(ctx: AuthContext, row: Any) -> bool:
    """Whether ``ctx`` may read ``row``: the rules of ``publish_all``, written again."""
    if ctx.role == "admin":
        return True
    if isinstance(row, ExpProject):
        return row.public or (ctx.id is not None and row.owner == ctx.id)
    if isinstance(row, ExpTask):
        return not row.hidden or (ctx.id is not None and row.owner == ctx.id)
    assert isinstance(row, ExpComment)
    return row.public or (ctx.id is not None and row.author == ctx.id)


def served(row: Any) -> dict[str, Any]:
    """``row`` as the routes serve it: every column but the secret ones."""
    return {k: v for k, v in row.model_dump().items() if k != "secret_note"}


def project_of(ctx: AuthContext, task: ExpTask) -> ExpProject | None:
    """The task's project if ``ctx`` may read it."""
    found = next((p for p in PROJECTS if p.id == task.project_id), None)
    return found if found is not None and can_read(ctx, found) else None


def parent_of(ctx: AuthContext, task: ExpTask) -> ExpTask | None:
    found = next((t for t in TASKS if t.id == task.parent_id), None)
    return found if found is not None and can_read(ctx, found) else None


def comments_of(ctx: AuthContext, task: ExpTask) -> list[ExpComment]:
    """The task's comments ``ctx`` may read, by id."""
    return [c for c in COMMENTS if c.task_id == task.id and can_read(ctx, c)]


CALLERS = {
    "anonymous": AuthContext(),
    "alice": AuthContext(id="alice"),
    "bob": AuthContext(id="bob"),
    "carol": AuthContext(id="carol"),
    "admin": AuthContext(id="root", role="admin"),
}


def headers_of(ctx: AuthContext) -> dict[str, str]:
    headers = {}
    if ctx.id is not None:
        headers["X-User"] = ctx.id
    if ctx.role is not None:
        headers["X-Role"] = ctx.role
    return headers
