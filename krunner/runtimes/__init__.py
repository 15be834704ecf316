"""Runtimes: the language table and the query engines."""
