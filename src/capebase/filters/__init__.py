"""The list query grammar (``?field__op=value``, ``order_by``, paging), turned into SQL
conditions for REST lists and into predicates for stream filters."""
