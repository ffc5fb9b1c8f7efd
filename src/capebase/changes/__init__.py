"""Committed changes: the change-log table, its capture inside sessions, ``ModelChange``, and
the log's retention."""
