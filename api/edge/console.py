"""The web console at ``/console``: static files of this package (``api/edge/console/``: a page, an ES module,
a stylesheet; charts are SVG drawn by the module), nothing from a CDN and no build step.

The console is only a client of ``/graphql``: it sends the signed-in person's own token, kept in the tab's
memory, so every access decision is the API's. The files carry a Content-Security-Policy that lets the page
load and connect to this server only.
"""

from __future__ import annotations

from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PATH = "/console"
CSP = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
)


class _Headers:
    """Security headers on every file of the console."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cache-control", b"no-cache"),
                ]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _to_index(_: object) -> Response:
    return RedirectResponse(f"{PATH}/", status_code=308)


def routes() -> list[Route | Mount]:
    """``/console`` (redirected to ``/console/``) and the console's files under it."""
    files = StaticFiles(packages=[("api.edge", "console")], html=True)
    return [Route(PATH, _to_index), Mount(PATH, app=_Headers(files))]
