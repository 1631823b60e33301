"""Entry point for `python -m vaecore`."""

from vaecore.cli import main

main()
