"""``python -m bluezone``: the same as the ``bluezone`` command."""

from bluezone.cli import main

main()
