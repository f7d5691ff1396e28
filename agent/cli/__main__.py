"""`python -m agent.cli …` runs the `errlearn` command line."""

import logging

from agent.cli import main

logging.basicConfig()
main()
