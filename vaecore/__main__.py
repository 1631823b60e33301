"""Entry point for `python -m vaecore`."""

from .cli import main

main()
