"""`python -m benchlib`: the console script."""

from benchlib.cli import main

main()
