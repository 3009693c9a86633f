"""Out-of-band approvals for `ask` decisions when the client cannot ask the human itself.

A pending approval is bound to exactly one call in one place: the server's root, server.tool, a
digest of the validated arguments (canonical JSON) and the digest of the policy in force; a grant is
consumed only by a call that matches all four. TTL and uses come from the humans' settings. The human grants it with `onrecord approve ID`; the agent's retry with the same
arguments consumes it. Approvals are single use by default and expire. One JSON file per
approval under the state directory; every change holds an exclusive lock on the folder.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from common.audit import canonical
from common.errors import OnrecordError

if TYPE_CHECKING:
    from common.config import Settings

Status = Literal["pending", "granted", "declined", "used", "expired"]


class ApprovalError(OnrecordError):
    """An approval ID is unknown, expired or already decided."""


@dataclass
class Approval:
    id: str
    call: str
    digest: str
    arguments: dict[str, Any]
    reason: str
    created: float
    expires: float
    status: Status = "pending"
    uses_left: int = 1
    decided_by: str | None = None
    root: str = ""
    policy: str = ""

    def as_record(self) -> dict[str, Any]:
        return asdict(self)


def arguments_digest(call: str, arguments: dict[str, Any], root: str = "", policy: str = "") -> str:
    """What binds a grant to one call in one place."""
    bound = "\n".join([root, call, policy, canonical(arguments)])
    return hashlib.sha256(bound.encode("utf-8", "surrogatepass")).hexdigest()


def policy_digest(settings: Settings) -> str:
    """The digest of the policy in force (mode, defaults, every rule with its file): the session
    record names it, and a grant made under one policy is void under another."""
    policy = {
        "mode": settings.mode,
        "default": settings.default,
        "annotations": settings.annotation_defaults,
        "rules": [[r.action, r.text, r.file] for r in settings.rules],
    }
    return "sha256:" + hashlib.sha256(canonical(policy).encode("utf-8", "surrogatepass")).hexdigest()


class ApprovalStore:
    def __init__(self, directory: Path, *, ttl_s: int = 900, uses: int = 1) -> None:
        self.directory = Path(directory)
        self.ttl_s = ttl_s
        self.uses = uses

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _path(self, approval_id: str) -> Path:
        if not approval_id.isalnum() or len(approval_id) > 32:
            raise ApprovalError(f"approval ID {approval_id!r} is not valid; IDs are short hex strings")
        return self.directory / f"{approval_id}.json"

    def _save(self, approval: Approval) -> None:
        path = self._path(approval.id)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(approval.as_record()), encoding="utf-8")
        tmp.replace(path)

    def _load(self, path: Path) -> Approval | None:
        try:
            approval = Approval(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None  # unreadable, or written by another version: it grants nothing
        if approval.status in ("pending", "granted") and approval.expires < time.time():
            approval.status = "expired"
        return approval

    def _all(self) -> list[Approval]:
        if not self.directory.is_dir():
            return []
        found = [self._load(p) for p in sorted(self.directory.glob("*.json"))]
        return sorted((a for a in found if a is not None), key=lambda a: a.created)

    def request(
        self,
        call: str,
        arguments: dict[str, Any],
        preview: dict[str, Any],
        reason: str,
        *,
        root: str = "",
        policy: str = "",
    ) -> Approval:
        """A pending approval for this exact call, reusing one that is still pending."""
        digest = arguments_digest(call, arguments, root, policy)
        with self._locked():
            for existing in self._all():
                if existing.digest == digest and existing.status == "pending":
                    return existing
            now = time.time()
            approval = Approval(
                id=os.urandom(4).hex(),
                call=call,
                digest=digest,
                arguments=preview,
                reason=reason,
                created=now,
                expires=now + self.ttl_s,
                uses_left=self.uses,
                root=root,
                policy=policy,
            )
            self._save(approval)
            return approval

    def decide(self, approval_id: str, *, grant: bool, by: str) -> Approval:
        with self._locked():
            approval = self._load(self._path(approval_id)) if self._path(approval_id).exists() else None
            if approval is None:
                raise ApprovalError(
                    f"no approval {approval_id!r}; `onrecord approvals` lists the pending ones"
                )
            if approval.status != "pending":
                raise ApprovalError(
                    f"approval {approval_id!r} is {approval.status}, not pending; nothing changed"
                )
            approval.status = "granted" if grant else "declined"
            approval.decided_by = by
            if grant:
                # The approving human's settings bound the grant, whatever the server asked for.
                approval.expires = time.time() + self.ttl_s
                approval.uses_left = min(approval.uses_left, self.uses)
            self._save(approval)
            return approval

    def consume(
        self, call: str, arguments: dict[str, Any], *, root: str = "", policy: str = ""
    ) -> Approval | None:
        """Use up one grant for exactly this call in this place, if there is one."""
        digest = arguments_digest(call, arguments, root, policy)
        with self._locked():
            for approval in self._all():
                if approval.digest == digest and approval.status == "granted" and approval.uses_left > 0:
                    approval.uses_left -= 1
                    if approval.uses_left == 0:
                        approval.status = "used"
                    self._save(approval)
                    return approval
        return None

    def get(self, approval_id: str) -> Approval:
        """One approval by ID."""
        path = self._path(approval_id)
        approval = self._load(path) if path.exists() else None
        if approval is None:
            raise ApprovalError(f"no approval {approval_id!r}; `onrecord approvals` lists the pending ones")
        return approval

    def pending(self) -> list[Approval]:
        return [a for a in self._all() if a.status == "pending"]

    def all(self) -> list[Approval]:
        return self._all()
