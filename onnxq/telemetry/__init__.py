"""What onnxq tells about itself.

JSON logs, Prometheus metrics, the prediction log, the drift check over it.
"""
