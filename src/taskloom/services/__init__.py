"""Background services: the loops that move runs without a worker asking (delayed runs,
TTL expiry, lease rescue, waitpoint timers), hosted by workers and servers."""
