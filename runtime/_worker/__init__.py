"""The worker: the per-process executor (its pool, heartbeats, recovery,
orphan sweep, clean stop), the dequeue loop and the cron loop. It imports the
core, the system database layer and the leaves, never the public API."""
