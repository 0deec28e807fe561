"""Database and file engines: each knows how to dump, check, and restore one kind of target."""
