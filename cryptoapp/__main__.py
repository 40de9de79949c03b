"""`python -m cryptoapp worker -l info` runs the worker, like the `cryptoapp` console script."""

from cryptoapp.app import main

main()
