"""The gateway's read model: the async reads the routes answer with (MySQL, the document store),
and the shapes they read into. Routes import from here, never from each other: ``runs`` (run
reports from the run ledger), ``stats`` (the maintained totals), ``tweets`` (staged and curated
tweets: pages, one tweet, and their API models)."""
