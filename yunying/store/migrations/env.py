"""Alembic environment: migrate the database named by the config's sqlalchemy.url."""

from __future__ import annotations

from alembic import context

from yunying.store.engine import create_store_engine
from yunying.store.models import Base

config = context.config


def run_migrations_online() -> None:
    engine = create_store_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
