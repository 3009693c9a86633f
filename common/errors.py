"""The one exception base the servers share.

    OnrecordError            a message written for the model and the human: what was wrong, how to fix it
    ├── ConfigError          (config.py) a settings file holds a bad key or value
    ├── WorkspaceError       (workspace.py) a path is outside the root, not regular, or unreadable
    ├── GitError             (git.py) a revision, path or repository is refused or git failed
    ├── ProcessError         (procs.py) a subprocess could not start
    ├── CursorError          (budget.py) a pagination cursor is malformed or belongs to another call
    └── ApprovalError        (approvals.py) an approval ID is unknown, expired or decided

The accountable server turns any OnrecordError raised by a tool into a tool error whose text the
model reads; any other exception reaches the model only as "Error executing tool X".
"""

from __future__ import annotations


class OnrecordError(ValueError):
    """An error whose message is meant for the caller."""
