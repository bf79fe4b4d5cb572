"""`python -m benchlib`: the console script, fork server first."""

from benchlib.forkserver import main

main()
