"""FastAPI plumbing every dialect shares (dependency aliases, body limits, strict JSON, errors in a
vendor's shape, Idempotency-Key, client hang-ups) and the routes that belong to no dialect."""
