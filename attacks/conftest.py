from tests.conftest import *  # noqa: F403  (db_url / db_kind fixtures)
from tests.conftest import _servers  # noqa: F401
