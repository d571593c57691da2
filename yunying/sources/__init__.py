"""Connectors that read the company's systems (SQL, HTTP, files) into validated records."""
