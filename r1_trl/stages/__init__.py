"""One module per seed stage; each exposes ``run(config) -> results``."""
