"""Generated REST routes: schemas, the list query grammar and the router."""

from .config import CrudConfig

__all__ = ["CrudConfig"]
