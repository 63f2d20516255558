"""Helpers for running onnxq on one machine and for testing it.

The embedded redis-server (`onnxq run`, tests), child processes, the metrics text reader.
No service process imports this package.
"""
