"""The store: typed models, the engine and session factory, and migrations."""
