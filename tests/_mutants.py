"""The surviving mutants of ``make mutate`` that no test can tell apart from the code, with why.

``tests/mutate.py`` counts a survivor as equivalent when its change matches an entry here:
(module, line as written, line as mutated, reason); "module" may name a function
(``capebase.realtime.subscribers.xǁStreamQueueǁtake``, mutmut's spelling) where the same change
elsewhere in the module is not equivalent. Matched by the change itself, not by mutmut's
numbering, which shifts when the code does. docs/MUTATION.md tells each group's story.
"""

from __future__ import annotations

EQUIVALENT: list[tuple[str, str, str, str]] = [
    # (module, line as written, line as mutated, why no test can tell them apart): survivors
    # that match are reported as equivalent and do not fail the run. Matched by the change,
    # not by mutmut's numbering, which shifts when the code does.
    (
        "capebase.auth.builtin.lockout",
        "if account is None",
        "if (account is None) and False",
        "accounts are strings: the extra key ('account', None) is never stored",
    ),
    (
        "capebase.auth.builtin.lockout",
        "self._counters.popitem(last=False)",
        "self._counters.popitem(last=None)",
        "OrderedDict.popitem tests `last` for truth, and None is false",
    ),
]

EQUIVALENT += [
    (
        "capebase.changes.capture",
        "if key is None or any(value is None for value in key):",
        after,
        "never true: the objects looked up are persistent ones (an identity) before the flush "
        "and ones this flush wrote (a full primary key) after it",
    )
    for after in ("if key is None and any(value is None for value in key):",)
] + [
    (
        "capebase.changes.capture",
        "continue",
        "break",
        "in _stored_rows: reached only for a key with a NULL, which no object looked up has "
        "(see the `if` above it)",
    ),
]

EQUIVALENT += [
    (
        "capebase.policy.rules",
        "if isinstance(column, Column) and column.table is mapper.local_table:",
        "if isinstance(column, Column) or column.table is mapper.local_table:",
        "the columns it adds (an inherited table's) are never looked up: build_rule accepts "
        "only fields of the model's own table",
    ),
    (
        "capebase.policy.rules",
        "return conditions[0] if len(conditions) == 1 else _and(conditions)",
        "return conditions[0] if (len(conditions) == 1) and False else _and(conditions)",
        "and_() of one condition is that condition",
    ),
    (
        "capebase.policy.evaluate",
        'if table is not None and plain(getattr(expr, "table", None)) is not table:',
        'if table is not None and plain(getattr(expr, "table", )) is not table:',
        "every ColumnClause has a table attribute (None for a lightweight column): getattr's "
        "default is never used",
    ),
] + [
    (
        "capebase.policy.evaluate",
        "raise NotEvaluable(f\"cannot evaluate operator {getattr(op, '__name__', op)!r} in "
        "Python\")",
        f"raise NotEvaluable(f\"cannot evaluate operator {{getattr(op, '__name__', {default})!r}}"
        " in Python\")",
        "SQLAlchemy's operators (functions, custom_op) all have a __name__: getattr's default "
        "is never used",
    )
    for default in ("None", "")
] + [
    (
        "capebase.policy.evaluate",
        'raise NotEvaluable(f"cannot evaluate clause list with {expr.operator}")',
        "raise NotEvaluable(None)",
        "unreachable: SQLAlchemy builds a BooleanClauseList with and_ or or_ only",
    ),
    (
        "capebase.policy.evaluate",
        'raise NotEvaluable(f"cannot evaluate {expr.operator}")',
        "raise NotEvaluable(None)",
        "unreachable: SQLAlchemy builds an AsBoolean with is_true or is_false only",
    ),
]

EQUIVALENT += [
    (
        "capebase.policy.statements",
        before,
        before.replace("False)", after),
        "parent entities are Mappers or AliasedInsps, which both define is_aliased_class: "
        "getattr's default is never used",
    )
    for before in (
        'getattr(entity, "is_aliased_class", False) or entity.mapper is not target',
        'if getattr(entity, "is_aliased_class", False):',
        'if not getattr(entity, "is_aliased_class", False):',
    )
    for after in ("None)", ")", "True)")
] + [
    (
        "capebase.policy.statements",
        'uncovered = sorted({getattr(t, "name", str(t)) for t in refused})',
        f'uncovered = sorted({{getattr(t, "name", {default}) for t in refused}})',
        "the refused tables and aliases all have a name: getattr's default is never used",
    )
    for default in ("None", "", "str(None)")
] + [
    (
        "capebase.policy.statements",
        "return None if entity is None else sa_inspect(entity).mapper",
        "return None if (entity is None) and False else sa_inspect(entity).mapper",
        "_require_filterable runs on ORM statements only, and an ORM UPDATE or DELETE always "
        "has an entity",
    ),
    (
        "capebase.policy.statements",
        'predicate = and_(policy.sql_filter(model, "read", ctx), policy.sql_filter(model, '
        "action, ctx))",
        "predicate = and_(policy.sql_filter(model, action, ctx))",
        "the read criteria also reach the UPDATE/DELETE as loader criteria; change capture, "
        "which reads the WHERE alone, then reads (and locks) more rows but logs only those "
        "that changed or went",
    ),
    (
        "capebase.policy.statements",
        "return literal(value)",
        "return literal(None)",
        "unreachable: SQLAlchemy stores every .values() entry as a bind parameter or a clause",
    ),
    (
        "capebase.policy.statements",
        "return column if isinstance(column, str) else str(column.key)",
        "return column if (isinstance(column, str)) and False else str(column.key)",
        "unreachable: SQLAlchemy keys .values() entries (VALUES lists too) by column objects",
    ),
] + [
    (
        "capebase.policy.statements",
        before,
        after,
        "with no SET column in the predicate, the 'new image' is the action predicate again: "
        "AND-ing it twice selects the same rows",
    )
    for before, after in (
        ("substituted = False", "substituted = None"),
        ("substituted = False", "substituted = True"),
        (
            "return result if substituted else None",
            "return result if (substituted) or True else None",
        ),
    )
]

EQUIVALENT += [
    (
        "capebase.writes.direct",
        before,
        after,
        "the key is compared with the primary key (`pk == bindparam`), which gives an untyped "
        "bind the column's type; DirectWriter runs only where UPDATE ... RETURNING exists, "
        "never on MySQL, whose exact_equals also renders the bare bind",
    )
    for before, after in [
        ("key = bindparam(KEY, type_=published.pk.type)", "key = bindparam(KEY, type_=None)"),
        ("key = bindparam(KEY, type_=published.pk.type)", "key = bindparam(KEY, )"),
        (
            ".where(equals(p.pk, bindparam(KEY, type_=p.pk.type)))",
            ".where(equals(p.pk, bindparam(KEY, type_=None)))",
        ),
        (
            ".where(equals(p.pk, bindparam(KEY, type_=p.pk.type)))",
            ".where(equals(p.pk, bindparam(KEY, )))",
        ),
    ]
] + [
    (
        "capebase.writes.direct",
        before,
        after,
        "server_values(model, ctx, None) computes auth_fields(model) itself: the same markers",
    )
    for before, after in [
        ("self._auth_fields = auth_fields(published.model)", "self._auth_fields = None"),
        (
            "image.update(server_values(self.published.model, ctx, self._auth_fields))",
            "image.update(server_values(self.published.model, ctx, None))",
        ),
        (
            "image.update(server_values(self.published.model, ctx, self._auth_fields))",
            "image.update(server_values(self.published.model, ctx, ))",
        ),
    ]
] + [
    (
        "capebase.writes.direct",
        'readable = False if old is None else self.cape.policy.check_row(p.model, "read", ctx, '
        "old)",
        'readable = True if old is None else self.cape.policy.check_row(p.model, "read", ctx, '
        "old)",
        "a missing row (old is None) raises NotFoundError on the next line whatever `readable` is",
    ),
    (
        "capebase.writes.direct",
        "raise NotFoundError(p.name, key)",
        "raise NotFoundError(p.name, None)",
        "the writer's NotFoundError only reaches the HTTP handler, whose 404 says "
        "'{model} not found' without the key",
    ),
] + [
    (
        "capebase.writes.direct",
        "return dict(zip(self.columns, row, strict=True))",
        f"return dict(zip(self.columns, row, {strict}))",
        "every row has exactly the table's columns (select(table), RETURNING *table.c): "
        "strict=True only guards against a future change",
    )
    for strict in ("strict=None", "", "strict=False")
] + [
    (
        "capebase.writes.direct",
        "return cast(Callable[[], Any], field.default_factory)  # `supports` refused the others",
        "return cast(None, field.default_factory)  # `supports` refused the others",
        "typing.cast returns its second argument whatever the first",
    ),
    (
        "capebase.writes.direct",
        "return lambda: copy.deepcopy(default)",
        "return lambda: copy.copy(default)",
        "the image's values are only bound and compared, never changed in place: a shallow "
        "copy of a mutable default is as safe as a deep one",
    ),
]

EQUIVALENT += [
    (
        "capebase.realtime.visibility",
        before,
        after,
        "ASK_DATABASE only sends the change to event_in_database, which decides in Python "
        "first and asks SQL only what Python cannot: the same event, one coroutine later",
    )
    for before, after in (
        ("was = self._visible(subscriber, old)", "was = None"),
        ("now_visible = self._visible(subscriber, new)", "now_visible = None"),
    )
] + [
    (
        "capebase.realtime.subscribers",
        f"self.{flag} = False",
        f"self.{flag} = None",
        f"`{flag}` is only ever tested for truth, and None is false",
    )
    for flag in ("closed", "overflowed", "revoked", "gone")
] + [
    (
        "capebase.realtime.subscribers",
        "self.queue.put_nowait(CLOSE, force=True)",
        after,
        "a full queue is emptied just before, and queue_size is at least 1 (RealtimeConfig "
        "refuses less): there is always room for CLOSE without forcing it",
    )
    for after in (
        "self.queue.put_nowait(CLOSE, force=None)",
        "self.queue.put_nowait(CLOSE, )",
        "self.queue.put_nowait(CLOSE, force=False)",
    )
] + [
    (
        "capebase.realtime.subscribers.xǁStreamQueueǁtake",
        "if len(items) <= limit:",
        "if len(items) < limit:",
        "with exactly `limit` items, the slices return the same list and leave an empty one",
    ),
    (
        "capebase.realtime.subscribers.xǁSubscriberǁpasses_filters",
        "return False",
        "return True",
        "in passes_filters: its one caller (Visibility._visible) has already answered "
        "False for a missing image",
    ),
]

EQUIVALENT += [
    (
        "capebase.policy.shapes",
        before,
        after,
        reason,
    )
    for before, afters, reason in [
        (
            "value: Any = getattr(node, name, None)",
            ["value: Any = getattr(node, name, )"],
            "every slot a kind declares in _traverse_internals is an attribute of its nodes",
        ),
        (
            "f\"{_name(node_kind(node))} with {name.strip('_')} cannot be checked in a \"",
            ["f\"{_name(node_kind(node))} with {name.strip('XX_XX')} cannot be checked in a \""],
            "slot names are lower case: stripping 'X' as well changes nothing",
        ),
        (
            'str(getattr(fn, "__module__", "")).startswith("sqlalchemy.orm.")',
            [
                'str(getattr(fn, "__module__", None)).startswith("sqlalchemy.orm.")',
                'str(getattr(fn, "__module__", )).startswith("sqlalchemy.orm.")',
                'str(getattr(fn, "__module__", "XXXX")).startswith("sqlalchemy.orm.")',
            ],
            "compile-state functions are functions or methods, which all have a __module__",
        ),
        (
            'if not getattr(entity, "is_aliased_class", False):',
            [
                'if not getattr(entity, "is_aliased_class", None):',
                'if not getattr(entity, "is_aliased_class", ):',
                'if not getattr(entity, "is_aliased_class", True):',
            ],
            "entities are Mappers or AliasedInsps (or None), which all define "
            "is_aliased_class: getattr's default is never used",
        ),
        (
            'return "literal_column() SQL"',
            [
                'return "XXliteral_column() SQLXX"',
                'return "literal_column() sql"',
                'return "LITERAL_COLUMN() SQL"',
            ],
            "unreachable: ColumnClause and Column are on the allow-list and have no raw-SQL "
            "slot, so no refusal names their kind through _name",
        ),
        (
            'return kind.__name__.lstrip("_")',
            ['return kind.__name__.lstrip("XX_XX")'],
            "no kind's name starts with 'X': stripping it as well changes nothing",
        ),
        (
            '_refuse("literal_column() SQL")(node)',
            ['_refuse("literal_column() SQL")(None)'],
            "the check _refuse makes does not read the node it is given",
        ),
        (
            '_refuse("with_loader_criteria() given a lambda")(node)',
            ['_refuse("with_loader_criteria() given a lambda")(None)'],
            "the check _refuse makes does not read the node it is given",
        ),
        (
            'if name not in SAFE_FUNCTIONS or getattr(node, "packagenames", None):',
            ['if name not in SAFE_FUNCTIONS or getattr(node, "packagenames", ):'],
            "every Function, generic ones too, has packagenames (a class attribute)",
        ),
        (
            'for op in (getattr(node, "operator", None), getattr(node, "modifier", None)):',
            ['for op in (getattr(node, "operator", ), getattr(node, "modifier", None)):'],
            "every kind _operator checks (Exists, clause lists, binary and unary expressions, "
            "CollectionAggregate, AsBoolean) has an operator attribute",
        ),
        (
            'elif getattr(op, "__module__", None) not in _OPERATOR_MODULES:',
            ['elif getattr(op, "__module__", ) not in _OPERATOR_MODULES:'],
            "operators are functions or custom_op instances, which all have a __module__",
        ),
        (
            "plan = _PLANS.get(cls)",
            ["plan = None", "plan = _PLANS.get(None)"],
            "the cache only saves work: a plan computed again is the same plan",
        ),
    ]
    for after in afters
]

EQUIVALENT += [
    ("capebase.policy.coverage", before, after, reason)
    for before, afters, reason in [
        (
            "statement.compile(dialect=dialect)",
            ["statement.compile(dialect=None)"],
            "the check reads table references, which no dialect changes: what one dialect's "
            "compilation refuses the default one refuses too (and the statement is compiled "
            "again for its database when it runs)",
        ),
        (
            'for option in statement_options(getattr(compiler, "statement", None)):',
            ['for option in statement_options(getattr(compiler, "statement", )):'],
            "Compiled.__init__ sets `statement` on every compiler",
        ),
        (
            'if (kw.get("asfrom") or kw.get("within_tstring")) and not kw.get(TRUSTED):',
            [
                'if (kw.get("asfrom") or kw.get(None)) and not kw.get(TRUSTED):',
                'if (kw.get("asfrom") or kw.get("XXwithin_tstringXX")) and not kw.get(TRUSTED):',
                'if (kw.get("asfrom") or kw.get("WITHIN_TSTRING")) and not kw.get(TRUSTED):',
            ],
            "a table inside a t-string (tstring(), Python 3.14): policy.shapes refuses TString "
            "before any user statement compiles",
        ),
        (
            'raise UnfilterableStatementError(f"A bare table cannot be run in a user session. '
            '{USE_ORM}")',
            ["raise UnfilterableStatementError(None)"],
            "reached only by a table rendered outside any SELECT, UPDATE or DELETE (a "
            "t-string), which policy.shapes refuses first",
        ),
        (
            "if reference is plain(statement.table) and _guarded_in(level, reference):",
            ["if reference is plain(statement.table) or _guarded_in(level, reference):"],
            "a user UPDATE or DELETE always has its target's guard in its WHERE (statements) "
            "and no other entity's (SQLAlchemy gives them no criteria there): the FROM-another-"
            "entity shapes are refused under either",
        ),
        (
            "if kw.get(\"iscrud\") and getattr(statement, \"is_insert\", False):",
            [
                "if kw.get(\"iscrud\") or getattr(statement, \"is_insert\", False):",
                "if kw.get(None) and getattr(statement, \"is_insert\", False):",
                "if kw.get(\"XXiscrudXX\") and getattr(statement, \"is_insert\", False):",
                "if kw.get(\"ISCRUD\") and getattr(statement, \"is_insert\", False):",
                "if kw.get(\"iscrud\") and getattr(None, \"is_insert\", False):",
                "if kw.get(\"iscrud\") and getattr(statement, None, False):",
                "if kw.get(\"iscrud\") and getattr(statement, \"is_insert\", None):",
                "if kw.get(\"iscrud\") and getattr(\"is_insert\", False):",
                "if kw.get(\"iscrud\") and getattr(statement, False):",
                "if kw.get(\"iscrud\") and getattr(statement, \"is_insert\", ):",
                "if kw.get(\"iscrud\") and getattr(statement, \"XXis_insertXX\", False):",
                "if kw.get(\"iscrud\") and getattr(statement, \"IS_INSERT\", False):",
                "if kw.get(\"iscrud\") and getattr(statement, \"is_insert\", True):",
            ],
            "unreachable under SQLAlchemy 2.1: an INSERT renders its target with "
            "format_table, not visit_table, and the UPDATE/DELETE targets (dispatched with "
            "iscrud) return above; in an INSERT's own level nothing else renders (statements "
            "refuses INSERT ... SELECT and SQL-computed values)",
        ),
        (
            'for join in level.get("asfrom_froms", ()):',
            [
                'for join in level.get("asfrom_froms", None):',
                'for join in level.get("asfrom_froms", ):',
            ],
            "every compiler level that renders a table (SELECT, UPDATE, DELETE) has "
            "asfrom_froms",
        ),
    ]
    for after in afters
] + [
    ("capebase.policy.coverage", before, before.replace("'name', table)", after), reason)
    for before in (
        "f\"({getattr(table, 'name', table)} is another FROM, which the policy's filter \"",
        "f\"Table {getattr(table, 'name', table)} is read without the permission filter at "
        "this \"",
    )
    for after, reason in (
        ("'name', None)", "every table and lightweight table has a name"),
        ("'name', )", "every table and lightweight table has a name"),
    )
]

EQUIVALENT += [
    (
        "capebase.policy.shapes",
        'elif getattr(value, "is_aliased_class", False) or isinstance(value, AliasedClass):',
        'elif getattr(value, "is_aliased_class", None) or isinstance(value, AliasedClass):',
        "getattr's default is only tested for truth, and None is false like False",
    ),
    (
        "capebase.policy.shapes",
        "continue  # the ORM's own loaders (a lazy load's reverse, a relationship's order)",
        "break  # the ORM's own loaders (a lazy load's reverse, a relationship's order)",
        "the one slot after compile-state functions is dialect_options, and the statements "
        "with ORM compile-state functions are the ORM's own loads, which carry none",
    ),
]

# The allow-list of kinds (and each kind's check) moved from policy/shapes.py to
# policy/shape_kinds.py, ``_name`` as ``kind_name``: the same survivors, under the new names.
_MOVED = {"capebase.policy.shapes": "capebase.policy.shape_kinds"}
EQUIVALENT += [
    (_MOVED[module], before.replace("_name(", "kind_name("), after.replace("_name(", "kind_name("),
     reason)
    for module, before, after, reason in list(EQUIVALENT)
    if module in _MOVED
]

EQUIVALENT += [
    (
        "capebase.policy.coverage",
        'table = plain(getattr(column, "table", None))',
        'table = plain(getattr(column, "table", ))',
        "every ColumnClause has a table attribute (None for a literal column): the default is "
        "never used",
    ),
]

# The hub group (realtime/hub.py and realtime/dispatcher.py; docs/MUTATION.md).
_REPLAY = "capebase.realtime.dispatcher.xǁDispatcherǁreplay"
_SQLITE_ORDER = (
    "on SQLite, where mutmut runs, `id IN (...)` and the (table_name, id) index are read in id "
    "order with or without ORDER BY; the ORDER BY is for PostgreSQL and MariaDB, whose runs of "
    "tests/realtime/test_hub.py check the order"
)
EQUIVALENT += [
    (
        _REPLAY,
        "if last_id > upto:",
        "if last_id >= upto:",
        "at last_id == upto the newest id read is at least upto: known is still >= last_id",
    ),
    (
        _REPLAY,
        "while position < upto:",
        "while position <= upto:",
        "at position == upto the query reads ids > upto and <= upto: none, and the loop stops",
    ),
    (
        _REPLAY,
        ".limit(self.config.replay_batch)",
        ".limit(None)",
        "without the limit the same rows come in one batch, in the same order (memory only)",
    ),
    (
        _REPLAY,
        "break",
        "return",
        "the loop is the generator's last statement",
    ),
    (_REPLAY, ".order_by(changes.c.id)", ".order_by(None)", _SQLITE_ORDER),
    (
        "capebase.realtime.dispatcher.xǁDispatcherǁ_fill_holes",
        ".order_by(changes.c.id)",
        ".order_by(None)",
        _SQLITE_ORDER,
    ),
    (
        "capebase.realtime.dispatcher.xǁDispatcherǁ_fill_holes",
        "for hole in [h for h, seen in self._holes.items() if seen < expired]:",
        "for hole in [h for h, seen in self._holes.items() if seen <= expired]:",
        "a hole seen exactly late_commit_window seconds ago to the clock's resolution is "
        "given up now or at the next dispatch: no test can time that",
    ),
]
EQUIVALENT += [
    (
        "capebase.realtime.dispatcher.xǁDispatcherǁ_note_holes",
        "if change_id > self.cursor + 1 and len(self._holes) < MAX_HOLES:",
        after,
        "change_id is above the cursor (the log is read after it); at cursor + 1 the range of "
        "skipped ids is empty, so letting it in notes nothing",
    )
    for after in (
        "if change_id >= self.cursor + 1 and len(self._holes) < MAX_HOLES:",
        "if change_id > self.cursor - 1 and len(self._holes) < MAX_HOLES:",
    )
]
EQUIVALENT += [
    (
        "capebase.realtime.dispatcher.xǁDispatcherǁ_deliver",
        "if view is not None and index:  # nobody streams the table: nothing to decode",
        "if view is not None or index:  # nobody streams the table: nothing to decode",
        "add_view and remove_view add and drop a table's view and index together: an index "
        "never outlives its view, and an empty one has no candidates to offer to",
    ),
]
# The hub group, second part (issue 17): the functions the first run did not reach.
_HUB = "capebase.realtime.hub.xǁHubǁ"
_RUNNING = "Hub._running is written by start and stop and read nowhere"
EQUIVALENT += [
    (_HUB + "__init__", "self._running = False", "self._running = None", _RUNNING),
    (_HUB + "__init__", "self._running = False", "self._running = True", _RUNNING),
    (_HUB + "start", "self._running = True", "self._running = None", _RUNNING),
    (_HUB + "stop", "self._running = False", "self._running = None", _RUNNING),
    (_HUB + "stop", "self._running = False", "self._running = True", _RUNNING),
    (
        _HUB + "__init__",
        "self.direct = direct",
        "self.direct = None",
        "Hub.direct is read nowhere: the dispatcher is handed `direct` itself (and "
        "test_the_log_is_read_through_the_engine_without_a_driver_path checks it uses it)",
    ),
    (
        _HUB + "__init__",
        "self.handlers = handlers",
        "self.handlers = None",
        "Hub.handlers is read nowhere: the handler runner is handed `handlers` itself",
    ),
    (
        _HUB + "_refresh_pins",
        "self._index_version = self.policy.version",
        "self._index_version = None",
        "every subscriber is then re-filed at each subscribe and delivery, under the pins the "
        "unchanged rules give again: the index ends as it was; only the cost differs",
    ),
]
EQUIVALENT += [
    (
        _HUB + "__init__",
        "self._index_version = -1",
        after,
        "the first _refresh_pins call always finds the indexes empty (subscribe refreshes "
        "before it files its subscriber, _deliver only when the table's index has one): "
        "skipping it when the initial value happens to equal policy.version re-files nothing",
    )
    for after in (
        "self._index_version = None",
        "self._index_version = +1",
        "self._index_version = -2",
    )
]
_DISPATCHER = "capebase.realtime.dispatcher.xǁDispatcherǁ"
EQUIVALENT += [
    (
        "capebase.realtime.dispatcher.xǁ_OnDemandConnectionǁclose",
        "self._connection = None",
        'self._connection = ""',
        "each dispatch makes its own _OnDemandConnection and closes it once, in `finally`: "
        "nothing uses it after close",
    ),
    (
        _DISPATCHER + "start",
        "select(changes.c.id).where(changes.c.id > self.cursor - STARTUP_HOLE_WINDOW)",
        "select(changes.c.id).where(changes.c.id >= self.cursor - STARTUP_HOLE_WINDOW)",
        "the one more id read, cursor - STARTUP_HOLE_WINDOW, is below the ids watched (from "
        "cursor - STARTUP_HOLE_WINDOW + 1): never looked up",
    ),
]
EQUIVALENT += [
    (
        _DISPATCHER + "__init__",
        "self.cursor = 0",
        after,
        "start() sets the cursor from the log before anything reads it: the hub is started "
        "by the lifespan before any stream, dispatch or replay",
    )
    for after in ("self.cursor = None", "self.cursor = 1")
]
EQUIVALENT += [
    (
        _DISPATCHER + "__init__",
        ".limit(config.replay_batch)",
        ".limit(None)",
        "without the limit the log after the cursor comes in one batch: the loop then reads "
        "once more, finds nothing and returns; the same changes in the same order (memory only)",
    ),
    (
        _DISPATCHER + "__init__",
        ".order_by(changes.c.id)",
        ".order_by(None)",
        "on SQLite, where mutmut runs, `id > ?` is read through the primary key in id order "
        "with or without ORDER BY; on PostgreSQL and MariaDB the ORDER BY is what guarantees "
        "it (not checked under mutation there)",
    ),
]

# mapper (issue 17): policy/mapper_sql.py
EQUIVALENT += [
    (
        "capebase.policy.mapper_sql",
        "require_plain_type(expression.type, dialect, written=False)",
        "require_plain_type(expression.type, dialect, written=None)",
        "sql_types tests `written` for truth, and None is false like False (the cache key "
        "differs by its text only, so the answer is the same)",
    ),
]

# flush (issue 17): policy/referential.py
EQUIVALENT += [
    (
        "capebase.policy.referential",
        'action = " ".join((value or "").upper().split())',
        'action = " ".join((value or "XXXX").upper().split())',
        "no action given reads as XXXX instead of the empty text: neither is an action, so "
        "both give None",
    ),
    (
        "capebase.policy.referential",
        'defaults = (yield _defaults(ref)) if action == "SET DEFAULT" else None',
        'defaults = (yield _defaults(ref)) if (action == "SET DEFAULT") or True else None',
        "the server defaults are read for every action, and used for SET DEFAULT only: one "
        "SELECT more, the same effects",
    ),
] + [
    (
        "capebase.policy.referential",
        "new = {**old, **dict(zip(ref.columns, values, strict=True))}",
        f"new = {{**old, **dict(zip(ref.columns, values, {after}))}}",
        "values always has one value per column of the foreign key (the parent's key, NULLs "
        "or the defaults, each built from ref.columns or the referred columns of the same "
        "constraint)",
    )
    for after in ("strict=None", "strict=False", "")
]

# flush (issue 17): policy/cascades.py
EQUIVALENT += [
    (
        "capebase.policy.cascades",
        "return check_in_database(session, policy, model, action, ctx, row, connection.execute)",
        "return check_in_database(None, policy, model, action, ctx, row, connection.execute)",
        "check_in_database uses the session only to execute when no execute is given, and "
        "connection.execute always is",
    ),
]

EQUIVALENT += [
    (
        "capebase.policy.referential",
        "return literal(None, type_=column.type)",
        after,
        "a NULL is a NULL whatever type its literal has: the SET NULL-like default of a column "
        "without a server default reads back as None either way",
    )
    for after in ("return literal(None, type_=None)", "return literal(None, )")
] + [
    (
        "capebase.policy.referential",
        "return cast(literal(arg) if isinstance(arg, str) else arg, column.type)",
        "return cast(literal(arg) if (isinstance(arg, str)) and False else arg, column.type)",
        "cast() binds a plain str as a literal itself: the same SELECT",
    ),
]
