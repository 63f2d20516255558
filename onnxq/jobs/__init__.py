"""Queued jobs.

The record and its state changes, Redis keys, the store, the submit path, idempotency.
"""
