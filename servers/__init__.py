"""The servers onrecord ships, by name. Imports happen only when a server is built."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import BaseModel

    from common.config import Settings
    from common.server import AccountableServer

# name -> module with `register(server, settings)`
SERVERS: dict[str, str] = {
    "repo": "servers.repo.server",
    "testing": "servers.testing.server",
    "data": "servers.data.server",
    "evals": "servers.evals.server",
    "deploy": "servers.deploy.server",
}
ALL = "all"
# name -> "module:class" of the model of its settings table (`[name]`)
SETTINGS: dict[str, str] = {
    "repo": "servers.repo.settings:RepoSettings",
    "testing": "servers.testing.settings:TestingSettings",
    "data": "servers.data.settings:DataSettings",
    "evals": "servers.evals.settings:EvalsSettings",
    "deploy": "servers.deploy.settings:DeploySettings",
}


def settings_model(name: str) -> type[BaseModel]:
    """The model of server `name`'s settings table."""
    module, _, cls = SETTINGS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def build(name: str, settings: Settings) -> AccountableServer:
    """Build one server, or every server's tools in one process for name 'all'."""
    from common import listing
    from common.errors import OnrecordError
    from common.schema import ENVELOPE
    from common.server import AccountableServer

    if name != ALL and name not in SERVERS:
        choices = ", ".join([*SERVERS, ALL])
        raise OnrecordError(f"unknown server {name!r}; choose one of: {choices}")
    names = list(SERVERS) if name == ALL else [name]
    server = AccountableServer(
        name,
        settings,
        instructions=" ".join([*(importlib.import_module(SERVERS[n]).INSTRUCTIONS for n in names), ENVELOPE]),
    )
    # tools/list as an earlier start with the same source, libraries and servers gave it, when kept
    # (common.listing); the tools are then built on first use.
    key = listing.key(names)
    file = listing.path(settings.state_dir, name, key)
    entries = listing.load(file, key)
    kept = (
        entries is not None
        and {owner for owner, _ in entries} == set(names)
        and server.use_listing(file, entries)
    )
    for n in names:
        importlib.import_module(SERVERS[n]).register(server, settings)
    if not kept:
        listing.save(file, key, server.listing_entries())
    return server
