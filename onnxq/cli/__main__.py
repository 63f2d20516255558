"""`python -m onnxq.cli`: the same as the `onnxq` command."""

from onnxq.cli.main import main

raise SystemExit(main())
