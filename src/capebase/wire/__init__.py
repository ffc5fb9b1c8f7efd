"""How rows and column values look on the wire: the values each column type holds, the JSON
grammar OpenAPI publishes for them, and the read, create and update schemas of a model."""
