"""Who is acting and through which request: the AuthContext every rule sees, the model fields
filled from it, secret fields, and request ids. Imports nothing else of capebase."""
