"""capebase's HTTP-facing pieces (``errors``: how every error is answered)."""
