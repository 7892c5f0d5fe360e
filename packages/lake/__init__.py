"""Shared library of the BigTech tweets data lake: contracts, schemas, settings, pure transforms, adapters."""

__version__ = "0.1.0"
