"""The command line: options, commands and what the terminal shows."""
