"""``python -m nasloop``: the same command line as the ``nasloop`` script."""
from .cli import run

if __name__ == "__main__":  # pragma: no cover
    run()
