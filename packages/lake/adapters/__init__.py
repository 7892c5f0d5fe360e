"""Thin I/O: object store, staging repository, curated repository, broker."""
