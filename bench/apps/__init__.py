"""The servers under test, one module per contender; each reads BENCH_DB_URL (and BENCH_VARIANT).

Every app serves the same Todo table and the same endpoints: ``GET /todo/{id}``,
``GET /todo?user_id=&limit=``, ``POST /todo`` and ``PATCH /todo/{id}``. The caller is named by the
``X-User-Id`` header (no header: anonymous); reads are public, writes are the owner's only.
"""
