"""Out-of-band approvals for `ask` decisions when the client cannot ask the human itself.

A pending approval is bound to exactly one call in one place: the server's root, the server that
asked, the tool as `server.tool`, a digest of the validated arguments (canonical JSON), a digest of
its targets (what the policy matched: each path's canonical names, each URL's canonical form) and the
digest of the policy in force. A grant is consumed only by a call that matches all six, so a path
whose link now points elsewhere is not the call the human approved.

What a human is shown is what will run: the targets beside the arguments as sent, both redacted
piece by piece (`common.redact.redact_target`) so a secret-shaped piece never hides the file or host,
and an approval whose shown values were redacted says so (`Approval.what_runs`). The human grants it
with `onrecord approve ID`; the agent's retry with the same arguments consumes it. TTL and uses come
from the humans' settings: the asking server's for a pending approval, the approving human's for a
grant, whose expiry counts from the moment it is granted. Approvals are single use by default. One
JSON file per approval under the state directory; every change holds an exclusive lock on the folder.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from common.audit import canonical
from common.errors import OnrecordError

if TYPE_CHECKING:
    from common.config import Settings

Status = Literal["pending", "granted", "declined", "used", "expired", "revoked"]
Scope = Literal["once", "settings", "session", "for"]
UNLIMITED = 1_000_000  # uses of a grant for a session or a period: bounded by its expiry instead
MAX_GRANT_S = 24 * 3600  # no grant outlives a day, whatever a human types


class ApprovalError(OnrecordError):
    """An approval ID is unknown, expired or already decided."""


@dataclass(frozen=True)
class Binding:
    """Exactly one call in one place: what a grant is for."""

    root: str
    server: str
    call: str
    digest: str
    policy: str
    targets: str = ""


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
    server: str = ""
    policy: str = ""
    session: str = ""  # the asking server's audit session: a `session` grant holds only there
    scope: Scope = "settings"
    # What the call acts on, as shown (redacted piece by piece), and the rules that hid any part of
    # what is shown; the binding holds the digest of the targets unredacted.
    targets: dict[str, list[str]] = field(default_factory=dict[str, list[str]])
    redacted: list[str] = field(default_factory=list[str])
    targets_digest: str = ""

    def as_record(self) -> dict[str, Any]:
        return asdict(self)

    def binding(self) -> Binding | None:
        """What this approval is for; None for a file written before approvals were bound to a
        place, which matches no call."""
        if not (self.root and self.server and self.policy):
            return None
        return Binding(self.root, self.server, self.call, self.digest, self.policy, self.targets_digest)

    def what_runs(self) -> str:
        """For the human deciding: what the call acts on, and whether part of what is shown is hidden."""
        return what_runs(self.targets, self.redacted)


def format_targets(targets: Mapping[str, object]) -> str:
    """A call's targets as every view shows them (the agent's message, the approvals table, the
    timeline, the review page): `path = ["a", "b"]; url = ["https://..."]`. Each name is quoted, so
    a name with a space or a separator in it reads as one name."""
    return "; ".join(
        f"{key} = {json.dumps(names if isinstance(names, list) else [names], ensure_ascii=False, default=str)}"
        for key, names in sorted(targets.items(), key=lambda item: str(item[0]))
    )


def what_runs(targets: dict[str, list[str]], redacted: list[str]) -> str:
    """One sentence for a human deciding a call: the targets it acts on and, when redaction hid part
    of what is shown, a plain warning naming the rules."""
    parts = []
    if targets:
        parts.append(f"It acts on: {format_targets(targets)}.")
    if redacted:
        rules = ", ".join(sorted(set(redacted)))
        parts.append(
            f"WARNING: part of what is shown is hidden by redaction ({rules}); "
            + ("those targets are what will be read or called." if targets else "decide knowing that.")
        )
    return " ".join(parts)


def targets_digest(targets: dict[str, list[str]]) -> str:
    """The digest of a call's targets (unredacted), or "" for a call with none."""
    if not targets:
        return ""
    return hashlib.sha256(canonical(targets).encode("utf-8", "surrogatepass")).hexdigest()


def arguments_digest(arguments: dict[str, Any]) -> str:
    """The digest of a call's validated arguments, as canonical JSON."""
    return hashlib.sha256(canonical(arguments).encode("utf-8", "surrogatepass")).hexdigest()


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
    """The approvals in one directory; `ttl_s` and `uses` bound what it requests and grants, so they
    always come from the humans' settings (`for_settings`)."""

    def __init__(self, directory: Path, *, ttl_s: int, uses: int) -> None:
        self.directory = Path(directory)
        self.ttl_s = ttl_s
        self.uses = uses

    @classmethod
    def for_settings(cls, settings: Settings) -> ApprovalStore:
        return cls(settings.approvals_path, ttl_s=settings.approval_ttl_s, uses=settings.approval_uses)

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
            if approval.status in ("pending", "granted") and approval.expires < time.time():
                approval.status = "expired"
        except (OSError, ValueError, TypeError):
            return None  # unreadable, or written by another version: it grants nothing
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
        root: str,
        server: str,
        policy: str,
        session: str = "",
        targets: dict[str, list[str]] | None = None,
        shown_targets: dict[str, list[str]] | None = None,
        redacted: list[str] | None = None,
    ) -> Approval:
        """A pending approval for exactly this call in this place, reusing one that is still pending.

        `call` is `server.tool`; `server` is the server that asks (`all` under `onrecord serve all`);
        `root` is its absolute root; `policy` is `policy_digest` of its settings. `preview` and
        `shown_targets` are the arguments and `targets` as a human may see them (redacted), and
        `redacted` the rules that hid any part of them.
        """
        wanted = Binding(
            root, server, call, arguments_digest(arguments), policy, targets_digest(targets or {})
        )
        with self._locked():
            for existing in self._all():
                # one pending request per call, place and session (a --session grant names it)
                if (
                    existing.status == "pending"
                    and existing.binding() == wanted
                    and existing.session == session
                ):
                    return existing
            now = time.time()
            approval = Approval(
                id=os.urandom(4).hex(),
                call=call,
                digest=wanted.digest,
                arguments=preview,
                reason=reason,
                created=now,
                expires=now + self.ttl_s,
                uses_left=self.uses,
                root=root,
                server=server,
                policy=policy,
                session=session,
                targets=shown_targets or {},
                redacted=sorted(set(redacted or [])),
                targets_digest=wanted.targets,
            )
            self._save(approval)
            return approval

    def decide(
        self, approval_id: str, *, grant: bool, by: str, scope: Scope = "settings", for_s: int | None = None
    ) -> Approval:
        """Grant or decline a pending approval. A grant's scope: `settings` (the humans' TTL and
        uses), `once`, `session` (any number of times while the asking server's session lasts, at
        most a day) or `for` (any number of times for `for_s` seconds, at most a day)."""
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
            if grant and approval.binding() is None:
                raise ApprovalError(
                    f"approval {approval_id!r} was written by an older onrecord and names no root or "
                    "policy, so no call could use it; nothing changed. Ask the agent to retry the call "
                    "for a new approval ID"
                )
            if grant and scope == "session" and not approval.session:
                raise ApprovalError(
                    f"approval {approval_id!r} names no server session to hold for; grant it --once or --for"
                )
            if scope == "for" and (for_s is None or not 0 < for_s <= MAX_GRANT_S):
                raise ApprovalError(
                    f"a grant lasts from 1 second to {MAX_GRANT_S // 3600} hours, e.g. --for 10m"
                )
            approval.status = "granted" if grant else "declined"
            approval.decided_by = by
            if grant:
                now = time.time()
                approval.scope = scope
                if scope == "settings":
                    # The approving human's settings bound the grant, whatever the server asked for.
                    approval.expires = now + self.ttl_s
                    approval.uses_left = min(approval.uses_left, self.uses)
                elif scope == "once":
                    approval.expires, approval.uses_left = now + self.ttl_s, 1
                elif scope == "session":
                    approval.expires, approval.uses_left = now + MAX_GRANT_S, UNLIMITED
                else:
                    approval.expires, approval.uses_left = now + (for_s or 0), UNLIMITED
            self._save(approval)
            return approval

    def revoke(self, approval_id: str, *, by: str) -> Approval:
        """Withdraw a pending or granted approval: no call can use it any more."""
        with self._locked():
            approval = self._load(self._path(approval_id)) if self._path(approval_id).exists() else None
            if approval is None:
                raise ApprovalError(f"no approval {approval_id!r}; `onrecord approvals --all` lists them")
            if approval.status not in ("pending", "granted"):
                raise ApprovalError(f"approval {approval_id!r} is {approval.status} already; nothing changed")
            approval.status = "revoked"
            approval.decided_by = by
            self._save(approval)
            return approval

    def consume(
        self,
        call: str,
        arguments: dict[str, Any],
        *,
        root: str,
        server: str,
        policy: str,
        session: str = "",
        targets: dict[str, list[str]] | None = None,
    ) -> Approval | None:
        """Use up one grant for exactly this call in this place (see `request`), if there is one; a
        `session` grant only in the session that asked for it."""
        wanted = Binding(
            root, server, call, arguments_digest(arguments), policy, targets_digest(targets or {})
        )
        with self._locked():
            for approval in self._all():
                if approval.scope == "session" and approval.session != session:
                    continue
                if approval.status == "granted" and approval.uses_left > 0 and approval.binding() == wanted:
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
