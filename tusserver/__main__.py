"""`python -m tusserver` is the `tusserver` command."""

from .cli import main

main()
