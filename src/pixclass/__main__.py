"""`python -m pixclass` runs the command line."""

from pixclass.cli import main

main()
