"""``python -m vmae_cli.cli``: the ``vmae`` command."""

from vmae_cli.cli import main

main()
