"""GraphQL for tiers: queries and mutations mixed into Query and Mutation (api/schema.py)."""

from __future__ import annotations

import strawberry


@strawberry.type
class TierQuery:
    pass


@strawberry.type
class TierMutation:
    pass
