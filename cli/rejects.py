"""`yunying rejects`: the rows each source set aside, by reason, without writing SQL."""

from __future__ import annotations

from sqlalchemy import func, select

from yunying.config import Settings
from yunying.sources.sample import reject_reasons
from yunying.store.engine import create_store_engine, session_scope
from yunying.store.models import RejectedRecord

# The newest rows read per source: enough for every reason a wrong mapping or format gives.
READ_AT_MOST = 10_000


def rejects(settings: Settings, name: str | None) -> str:
    """Per source (or the one named): how many rows were set aside, then each reason with its
    count and an example row's id, contacts masked, the commonest first."""
    sources = settings.sources if name is None else [settings.source(name)]
    engine = create_store_engine(settings.store_url)
    lines = []
    try:
        with session_scope(engine) as session:
            for source in sources:
                total = session.scalar(
                    select(func.count()).where(RejectedRecord.source == source.name)
                )
                lines.append(f"source {source.name}: {total} row(s) set aside")
                newest = session.execute(
                    select(RejectedRecord.raw, RejectedRecord.reason)
                    .where(RejectedRecord.source == source.name)
                    .order_by(RejectedRecord.id.desc())
                    .limit(READ_AT_MOST)
                ).tuples()
                for reason in reject_reasons(source, list(newest)):
                    lines.append(f"  {reason.count} x {reason.reason}")
                    lines.append(f"      e.g. {reason.example_of}: {reason.example}")
                if total and total > READ_AT_MOST:
                    lines.append(f"  (reasons from the newest {READ_AT_MOST:,} rows)")
    finally:
        engine.dispose()
    return "\n".join(lines) or "no sources configured"
