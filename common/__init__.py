"""onrecord: MCP tool servers with every AI action on the record."""

__version__ = "0.1.0"
