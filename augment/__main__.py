"""`python -m augment` is `msaug`."""

from augment.cli import main

main()
