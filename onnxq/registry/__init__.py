"""Getting a model in (the CLI only; no service imports this package).

Export from scikit-learn and PyTorch, the parity gate, register/promote/rollback, the demo model.
"""
