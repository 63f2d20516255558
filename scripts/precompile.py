"""Import modules so that Python writes bytecode for exactly what a process loads.

    python scripts/precompile.py gateway.* onnxq.* onnxruntime gunicorn.workers.ggevent
    python scripts/precompile.py --without pandas worker.* onnxq.*

`pkg.*` means every module of the package. Run in an image's build stage (bytecode writing on):
the image then carries .pyc files only for modules its processes import, about half the size of
compiling every installed module, and each process starts about twice as fast as with none
(measured in docs/operations.md). Nothing is run beyond the imports. `--without PKG` leaves a
package's bytecode out although something imported it: for a package its processes load only
rarely (the worker's pandas, for the weekly drift check), which then compiles it in memory.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import py_compile
import shutil
import sys
from pathlib import Path


def module_names(patterns: list[str]) -> list[str]:
    names: list[str] = []
    for pattern in patterns:
        if pattern.endswith(".*"):
            package = importlib.import_module(pattern[:-2])
            names.append(package.__name__)
            # Sub-packages too (onnxq/jobs/, onnxq/models/, ...); walk_packages imports each
            # sub-package's __init__ only, which holds no imports of its own.
            prefix = f"{package.__name__}."
            names += [info.name for info in pkgutil.walk_packages(package.__path__, prefix)]
        else:
            names.append(pattern)
    return names


def without(argv: list[str]) -> tuple[list[str], list[str]]:
    """(`--without` packages, the other arguments)."""
    left_out, rest = [], []
    arguments = iter(argv)
    for argument in arguments:
        if argument == "--without":
            left_out.append(next(arguments))
        else:
            rest.append(argument)
    return left_out, rest


def remove_bytecode(package: str) -> int:
    """Delete a package's __pycache__ directories; how many there were."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"precompile: --without {package}: not an installed package")
    caches = [
        c for root in spec.submodule_search_locations for c in Path(root).rglob("__pycache__")
    ]
    for cache in caches:
        shutil.rmtree(cache)
    return len(caches)


def main(argv: list[str]) -> int:
    left_out, argv = without(argv)
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    if sys.flags.dont_write_bytecode:
        print("precompile: bytecode writing is off: unset PYTHONDONTWRITEBYTECODE", file=sys.stderr)
        return 2
    names = module_names(argv)
    compiled_only = []
    for name in names:
        if name.endswith(".__main__"):  # importing it would run the command
            py_compile.compile(importlib.util.find_spec(name).origin, doraise=True)
            continue
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # A module of `pkg.*` that needs a package this image leaves out (the CLI's drift
            # and export commands need pandas or scikit-learn): its process never imports it
            # (tests/scripts/test_image_requirements.py), so compile its file without running it.
            spec = importlib.util.find_spec(name)
            if spec is None or spec.origin is None or name == exc.name:
                raise
            py_compile.compile(spec.origin, doraise=True)
            compiled_only.append(f"{name} (needs {exc.name})")
    print(
        f"precompile: imported {len(names) - len(compiled_only)} modules and everything they "
        f"import; compiled without importing: {', '.join(compiled_only) or 'none'}"
    )
    for package in left_out:
        print(f"precompile: left out {package}'s bytecode ({remove_bytecode(package)} caches)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
