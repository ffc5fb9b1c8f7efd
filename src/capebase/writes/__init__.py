"""Writes of the generated routes as a given caller: create, update and delete of one row."""
