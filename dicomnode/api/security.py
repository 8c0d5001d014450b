"""Headers every HTTP response carries: the page runs only its own scripts, in no frame, and leaks no referrer."""

from __future__ import annotations

from typing import Any

# The worklist page loads only /static files and talks only to this server; key images are blob: URLs.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI sets inline styles as it renders; its scripts are still only ours.
DOCS_POLICY = PAGE_POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
_FIXED = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class SecurityHeaders:
    """ASGI middleware (not BaseHTTPMiddleware, which would buffer the worklist's event stream)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = DOCS_POLICY if scope["path"].startswith("/api/docs") else PAGE_POLICY

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _NAMES]
                message["headers"] = [*headers, *_FIXED, (b"content-security-policy", policy.encode())]
            await send(message)

        await self.app(scope, receive, with_headers)


_NAMES = {k for k, _ in _FIXED} | {b"content-security-policy"}
