"""The SQL functions a user session's statements may call."""

from __future__ import annotations

AGGREGATES = frozenset({
    "count", "sum", "min", "max", "avg", "total", "group_concat", "string_agg",
    "aggregate_strings", "array_agg", "json_agg", "jsonb_agg", "json_group_array",
    "json_group_object", "json_object_agg", "jsonb_object_agg", "bool_and", "bool_or",
    "every", "stddev", "stddev_pop", "stddev_samp", "variance", "var_pop", "var_samp",
    "row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead",
    "first_value", "last_value", "nth_value", "mode", "percentile_cont", "percentile_disc",
})
"""Aggregate and window functions: they see only the rows the query reads (after its WHERE)."""

SAFE_FUNCTIONS = AGGREGATES | frozenset({
    "rollup", "cube", "grouping_sets",
    # functions of their arguments only
    "coalesce", "nullif", "ifnull", "greatest", "least", "abs", "round", "floor", "ceil",
    "ceiling", "sign", "mod", "power", "pow", "sqrt", "exp", "ln", "log", "trunc", "random",
    "lower", "upper", "length", "char_length", "character_length", "octet_length", "substr",
    "substring", "trim", "ltrim", "rtrim", "replace", "concat", "concat_ws", "instr",
    "position", "strpos", "left", "right", "lpad", "rpad", "reverse", "repeat", "initcap",
    "now", "current_date", "current_time", "current_timestamp", "localtime",
    "localtimestamp", "date", "time", "datetime", "strftime", "julianday", "unixepoch",
    "date_trunc", "date_part", "to_char", "to_date", "to_timestamp", "age", "make_date",
    "date_add", "date_sub", "datediff", "timestampdiff", "year", "month", "day", "hour",
    "minute", "second", "json_extract", "json_array_length", "json_build_object",
    "json_build_array", "jsonb_build_object", "json_object", "json_array", "json_typeof",
    "jsonb_typeof", "json_type",
    # TABLESAMPLE methods
    "bernoulli", "system",
})
"""Names of the SQL functions a user statement may call (lower case). Every other name is
refused: some databases have functions that run a query given as text (PostgreSQL's
``query_to_xml``), read files (``pg_read_file``, MySQL's ``LOAD_FILE``) or another database."""

OF_ARGUMENTS_ONLY = frozenset({
    "coalesce", "nullif", "ifnull", "greatest", "least", "abs", "round", "floor", "ceil",
    "ceiling", "sign", "mod", "power", "pow", "sqrt", "exp", "ln", "log", "trunc",
    "lower", "upper", "length", "char_length", "character_length", "octet_length", "substr",
    "substring", "trim", "ltrim", "rtrim", "replace", "concat", "concat_ws", "instr",
    "position", "strpos", "left", "right", "lpad", "rpad", "reverse", "repeat", "initcap",
    "json_extract", "json_array_length", "json_typeof", "jsonb_typeof", "json_type",
})
"""Functions whose answer depends on their arguments alone: the same row gives the same answer
at any time. Clock and random functions are not, and neither are the date functions, which
SQLite reads ``'now'`` with."""
