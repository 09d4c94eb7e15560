"""The command line: main.py (the lazy command group and entry point) and one module per command, which parse
options, call the workflows and print; nothing else imports this package."""
