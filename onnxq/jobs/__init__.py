"""Queued jobs.

record (the document), keys (every Redis key), lifecycle (every state change),
store (Redis I/O), queue (submit and every message sent), idempotency (Idempotency-Key claims).
"""
