"""CLI subcommands, one module each (registered in cli.COMMANDS)."""
