"""The todo demo that `make demo` starts: the README's Todo app with a header-based demo auth."""
