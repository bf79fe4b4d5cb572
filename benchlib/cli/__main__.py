"""`python -m benchlib.cli`: the console script."""

from benchlib.cli import main

main()
