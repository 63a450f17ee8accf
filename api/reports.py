"""GraphQL for reports: queries and mutations mixed into Query and Mutation (api/schema.py)."""

from __future__ import annotations

import strawberry


@strawberry.type
class ReportQuery:
    pass


@strawberry.type
class ReportMutation:
    pass
