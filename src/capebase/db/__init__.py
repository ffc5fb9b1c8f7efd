"""Database access: the engine and the user and privileged sessions."""
