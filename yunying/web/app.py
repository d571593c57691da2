"""`yunying web`: the ASGI app a recipient and a provider reach, served by uvicorn.

    GET  /healthz                      200 when the store answers, 503 otherwise
    GET  /unsubscribe?token=…          confirmation page (changes nothing)
    POST /unsubscribe?token=…          one-click (RFC 8058) or the confirmed form
    GET  /preferences?token=…          channels and topics
    POST /preferences?token=…          save them
    GET  /c/<token>                    a tracked link: record the first click, redirect
    POST /callbacks/…                  provider callbacks (see callbacks.py)
    GET  /rewards/<campaign>/…         published winners pages and commitments (winners.py)

Stateless over the store: run as many instances as needed behind a proxy. When the store
is unreachable, every request that needs it answers 503 with Retry-After and changes
nothing, so a client's retry is safe. No route sends a message or pays a reward.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from yunying.config import Settings
from yunying.store.engine import create_store_engine
from yunying.web import callbacks, pages, winners
from yunying.web.context import TEMPLATES, Web, campaign_topics, log
from yunying.web.safety import RateLimit, SecurityHeaders

Handler = Callable[[Web, Request], Awaitable[Response]]
# Providers sign their callbacks and retry in bursts; the health check is polled.
NOT_RATE_LIMITED = ("/callbacks/", "/healthz")


def create_app(settings: Settings, engine: Engine | None = None) -> Starlette:
    engine = engine or create_store_engine(settings.store_url)
    web = Web(settings, engine, topics=campaign_topics(settings.campaign_dir))
    css = (TEMPLATES / "web.css").read_bytes()

    def bind(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        return partial(handler, web)

    async def healthz(request: Request) -> Response:
        await web.in_store(lambda session: session.execute(text("SELECT 1")))
        return PlainTextResponse("ok\n")

    async def stylesheet(request: Request) -> Response:
        return Response(css, media_type="text/css", headers={"cache-control": "max-age=3600"})

    async def store_unavailable(request: Request, exc: Exception) -> Response:
        log.warning("store unavailable: %s", type(exc).__name__)
        return PlainTextResponse(
            "the store is unavailable; retry shortly\n", 503, headers={"retry-after": "5"}
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        engine.dispose()

    routes = [
        Route("/healthz", healthz),
        Route("/static/web.css", stylesheet),
        Route("/unsubscribe", bind(pages.unsubscribe_page), methods=["GET"]),
        Route("/unsubscribe", bind(pages.unsubscribe_post), methods=["POST"]),
        Route("/preferences", bind(pages.preferences_page), methods=["GET"]),
        Route("/preferences", bind(pages.preferences_post), methods=["POST"]),
        Route("/c/{token}", bind(pages.click), methods=["GET"]),
        Route("/callbacks/resend", bind(callbacks.resend), methods=["POST"]),
        Route("/callbacks/twilio/status", bind(callbacks.twilio_status), methods=["POST"]),
        Route("/callbacks/twilio/inbound", bind(callbacks.twilio_inbound), methods=["POST"]),
        Route("/callbacks/webhook", bind(callbacks.webhook_receipt), methods=["POST"]),
        Route("/callbacks/sms", bind(callbacks.sms_reply), methods=["POST"]),
        Route("/rewards/{campaign}/", bind(winners.latest_page), methods=["GET"]),
        Route("/rewards/{campaign}/versions.json", bind(winners.versions_index), methods=["GET"]),
        Route("/rewards/{campaign}/{name}", bind(winners.published_file), methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders, https=settings.public_url.startswith("https://")),
            Middleware(
                RateLimit,
                per_minute=settings.web.rate_limit_per_minute,
                exempt=NOT_RATE_LIMITED,
            ),
        ],
        exception_handlers={DBAPIError: store_unavailable},
        lifespan=lifespan,
    )


def serve(settings: Settings) -> None:
    """Run the app with uvicorn on `web.host`:`web.port` until interrupted."""
    import copy

    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    # uvicorn's own log format, for our lines too (they carry counts and channels only).
    logging_config = copy.deepcopy(LOGGING_CONFIG)
    logging_config["loggers"]["yunying"] = {"handlers": ["default"], "level": "INFO"}
    uvicorn.run(
        create_app(settings),
        host=settings.web.host,
        port=settings.web.port,
        # Access logs would print each token-bearing URL; our own lines carry none.
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips=settings.web.trusted_proxies,
        log_config=logging_config,
        log_level="info",
    )
