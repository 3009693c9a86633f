"""The one exception base the servers share.

    OnrecordError            a message written for the model and the human: what was wrong, how to fix it
    ├── ConfigError          (config.py) a settings file holds a bad key or value; a tool name is taken
    ├── WorkspaceError       (workspace.py) a path is outside the root, not regular, or unreadable
    ├── GitError             (git.py) a revision, path or repository is refused or git failed
    ├── GlobError            (policy.py) a glob pattern cannot be compiled
    ├── ContentWithheld      (content.py) the whole result is a file the policy withholds
    ├── ProcessError         (procs.py) a subprocess could not start
    ├── CursorError          (budget.py) a pagination cursor is malformed or belongs to another call
    └── ApprovalError        (approvals.py) an approval ID is unknown, expired or decided

It is not a ValueError: a bare `except ValueError` meant for a parsing failure never swallows ours.

The accountable server turns any OnrecordError raised by a tool into a tool error whose text the
model reads; any other exception reaches the model only as "Error executing tool X".
"""

from __future__ import annotations


class OnrecordError(Exception):
    """An error whose message is meant for the caller."""
