"""GraphiQL, served from the installed packages: its page here and its built files (GraphiQL, React, its
stylesheet) from the ``graphene-django-graphiql-static`` wheel, a dependency, so the page works offline and
loads nothing from a CDN (strawberry's own page does). Development only: production turns GET off.

The page shows how to authenticate (GraphiQL can't even load the schema without a token) and starts with the
``Authorization`` header ready to be completed.
"""

from __future__ import annotations

import html
import json

from starlette.staticfiles import StaticFiles

ASSETS_PATH = "/graphiql-assets"
# (the wheel's package, and the folder of built files inside it; the package's Django code is never imported)
_PACKAGE = ("graphene_django_graphiql_static", "static/graphene_django_graphiql_static")
_STYLES = ("graphiql.min.css",)
_SCRIPTS = ("react.production.min.js", "react-dom.production.min.js", "graphiql.min.js")

DEFAULT_HEADERS = '{\n  "Authorization": "Bearer <a token: tierwise token issue --sub alice>"\n}'
DEFAULT_QUERY = (
    "# Set the Authorization header below (Headers), then run this with Ctrl-Enter.\n{ viewer { subject roles } }\n"
)


def assets_app() -> StaticFiles:
    """The built files, at ``ASSETS_PATH`` (a missing wheel fails at startup, not on the first page)."""
    return StaticFiles(packages=[_PACKAGE])


def page(endpoint: str) -> str:
    """The GraphiQL page for ``endpoint``."""
    styles = "\n".join(f'  <link rel="stylesheet" href="{ASSETS_PATH}/{name}">' for name in _STYLES)
    scripts = "\n".join(f'  <script src="{ASSETS_PATH}/{name}"></script>' for name in _SCRIPTS)
    settings = json.dumps({"url": endpoint, "headers": DEFAULT_HEADERS, "query": DEFAULT_QUERY})
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>tierwise · GraphiQL</title>
  <link rel="icon" href="data:,">
{styles}
  <style>
    html, body {{ height: 100%; margin: 0; }}
    body {{ display: flex; flex-direction: column; font-family: system-ui, sans-serif; }}
    #hint {{ padding: 6px 12px; background: #fff8e1; border-bottom: 1px solid #e0c97a; font-size: 14px; }}
    #hint code {{ background: #f3ead0; padding: 0 3px; }}
    #graphiql {{ flex: 1; min-height: 0; }}
  </style>
</head>
<body>
  <div id="hint">Every request needs a token: run <code>tierwise token issue --sub alice</code> (staff) or use a
    partner token <code>tw_pat_…</code>, and put <code>{html.escape('{"Authorization": "Bearer <token>"}')}</code>
    in the <b>Headers</b> pane below; the schema loads once it is set (press the refresh button of the docs).</div>
  <div id="graphiql">Loading GraphiQL…</div>
{scripts}
  <script>
    const settings = {settings};
    const fetcher = GraphiQL.createFetcher({{ url: settings.url }});
    ReactDOM.render(
      React.createElement(GraphiQL, {{
        fetcher: fetcher,
        defaultHeaders: settings.headers,
        defaultQuery: settings.query,
        isHeadersEditorEnabled: true,
        shouldPersistHeaders: true,
        defaultEditorToolsVisibility: "headers",
      }}),
      document.getElementById("graphiql"),
    );
  </script>
</body>
</html>
"""
