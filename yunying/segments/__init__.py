"""Segments (人群/分群): files under `deployments/segments/` compiled to one statement each."""
