"""Events out over GraphQL: webhook endpoints, their delivery log, replay (and the subscriptions)."""
