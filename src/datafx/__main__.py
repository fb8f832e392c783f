"""Run the ``datafx`` command with ``python -m datafx``."""

from datafx.cli import main

if __name__ == "__main__":
    main()
