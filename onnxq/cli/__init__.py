"""The `onnxq` command line, including `onnxq run` (the one-machine stack)."""
