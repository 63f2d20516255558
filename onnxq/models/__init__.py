"""Model versions on disk and in memory.

Manifest, ONNX file check, the warm session, the repository, rows checked against a manifest.
"""
