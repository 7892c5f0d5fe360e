"""Pure transforms: no network, no clients. Each can be tested with three rows and no server."""
