"""Celery and Redis plumbing both services share.

The Celery app, Redis clients, the kombu transport.
"""
