"""GraphQL of benefits, their uses, refunds and the economics of tiers (issue 15)."""
