"""check_config: configuration that would break or weaken a deployment.

YAML, JSON and TOML files that do not parse; env files whose keys differ between environments
(`.env.staging` vs `.env.production`: only key names are compared, never values); Kubernetes
workloads without probes, without resource requests and limits, or with an unpinned image.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections import defaultdict
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import Field

from common import content, kinds, offload
from common.budget import join_notes, take_within
from common.redact import redact_text
from common.workspace import WorkspaceError
from servers.deploy.context import DeployContext, DeployError
from servers.deploy.models import ConfigProblem, ConfigReport

MAX_BYTES = 2_000_000
MAX_FILES = 5000
CONFIG_SUFFIXES = (".yaml", ".yml", ".json", ".toml")
# JSON with comments by convention: a parse error there is not a problem.
_JSONC = re.compile(r"(^|/)(tsconfig[^/]*|jsconfig[^/]*)\.json$|(^|/)\.(vscode|devcontainer)/|\.jsonc$")
_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.\-]*)\s*=")
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod", "Job", "CronJob"}
RUNS_UNTIL_DONE = {"Job", "CronJob"}


def is_env_file(path: str) -> bool:
    name = PurePosixPath(path).name
    return name == ".env" or name.startswith(".env.") or name.endswith(".env")


def is_config(path: str) -> bool:
    return path.lower().endswith(CONFIG_SUFFIXES) or is_env_file(path)


async def config_files(ctx: DeployContext) -> list[str]:
    return [n for n in await ctx.shipped_files() if is_config(n)]


def _problem(
    path: str,
    kind: Literal["parse_error", "env_drift", "k8s_probes", "k8s_resources", "k8s_latest_image"],
    message: str,
    fix: str,
    line: int | None = None,
) -> ConfigProblem:
    return ConfigProblem(path=path, line=line, kind=kind, message=message, fix=fix)


def _yaml_documents(text: str, path: str) -> tuple[list[tuple[int, Any]], ConfigProblem | None]:
    import yaml  # on first use: a server that never checks YAML does not pay for it at start

    try:
        docs = []
        loader = yaml.SafeLoader(text)
        try:
            while loader.check_node():
                node = loader.get_node()
                if node is None:
                    break
                docs.append((node.start_mark.line + 1, loader.construct_document(node)))
        finally:
            loader.dispose()
        return docs, None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return [], _problem(
            path, "parse_error", f"YAML does not parse: {problem}", "fix the syntax at this line", line
        )
    except RecursionError:
        return [], _problem(path, "parse_error", "YAML nests too deeply to parse", "flatten the document")


def documents(text: str, path: str) -> tuple[list[tuple[int, Any]], ConfigProblem | None]:
    """The documents (with their first line) in a YAML, JSON or TOML file's text, or the problem
    that stops it parsing. The one place repository configuration is parsed: besides syntax errors,
    hostile text makes the parsers recurse too deep or build integers of thousands of digits, and
    that is a problem with the file, never a crash of the tool."""
    try:
        return _parse(text, path)
    except RecursionError:
        return [], _problem(
            path, "parse_error", "the document nests too deeply to parse", "flatten the document"
        )
    except (ValueError, TypeError) as exc:
        reason = redact_text(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)[0][:200]
        return [], _problem(path, "parse_error", f"the document cannot be read: {reason}", "fix the value")


def _parse(text: str, path: str) -> tuple[list[tuple[int, Any]], ConfigProblem | None]:
    lower = path.lower()
    if lower.endswith((".yaml", ".yml")):
        return _yaml_documents(text, path)
    if lower.endswith(".json"):
        if _JSONC.search(path):
            return [], None
        try:
            return [(1, json.loads(text))], None
        except json.JSONDecodeError as exc:
            return [], _problem(
                path,
                "parse_error",
                f"JSON does not parse: {exc.msg}",
                "fix the syntax at this line",
                exc.lineno,
            )
        except RecursionError:
            return [], _problem(path, "parse_error", "JSON nests too deeply to parse", "flatten the document")
    if lower.endswith(".toml"):
        try:
            return [(1, tomllib.loads(text))], None
        except tomllib.TOMLDecodeError as exc:
            m = re.search(r"line (\d+)", str(exc))
            return [], _problem(
                path,
                "parse_error",
                f"TOML does not parse: {exc}",
                "fix the syntax at this line",
                int(m.group(1)) if m else None,
            )
    return [], None


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        return None
    kind = doc.get("kind")
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        spec = (
            (spec.get("jobTemplate") or {}).get("spec") if isinstance(spec.get("jobTemplate"), dict) else None
        )
        if not isinstance(spec, dict):
            return None
    template = spec.get("template")
    inner = template.get("spec") if isinstance(template, dict) else None
    return inner if isinstance(inner, dict) else None


def _workload(doc: Any, path: str, line: int) -> list[ConfigProblem]:
    if not isinstance(doc, dict) or doc.get("kind") not in WORKLOADS or "apiVersion" not in doc:
        return []
    kind = str(doc["kind"])
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    what = f"{kind} {name or '(unnamed)'}"
    spec = _pod_spec(doc)
    containers = spec.get("containers") if spec else None
    found: list[ConfigProblem] = []
    for container in containers if isinstance(containers, list) else []:
        if not isinstance(container, dict):
            continue
        cname = container.get("name", "?")
        image = str(container.get("image", ""))
        tail = image.rsplit("/", 1)[-1]
        if "@sha256:" not in image and (":" not in tail or tail.endswith(":latest")):
            found.append(
                _problem(
                    path,
                    "k8s_latest_image",
                    f"{what}, container {cname}: image {image!r} is latest or untagged",
                    "pin a version tag or a digest",
                    line,
                )
            )
        if kind not in RUNS_UNTIL_DONE:
            missing = [p for p in ("readinessProbe", "livenessProbe") if p not in container]
            if missing:
                found.append(
                    _problem(
                        path,
                        "k8s_probes",
                        f"{what}, container {cname}: no {' and no '.join(missing)}",
                        "add readinessProbe (traffic only when ready) and livenessProbe (restart when hung)",
                        line,
                    )
                )
        resources = container.get("resources")
        lacking = [
            k for k in ("requests", "limits") if not (isinstance(resources, dict) and resources.get(k))
        ]
        if lacking:
            found.append(
                _problem(
                    path,
                    "k8s_resources",
                    f"{what}, container {cname}: no resource {' or '.join(lacking)}",
                    "set resources.requests (scheduling) and resources.limits (memory at least)",
                    line,
                )
            )
    return found


def env_keys(text: str) -> set[str]:
    return {m.group(1) for line in text.splitlines() if (m := _ENV_LINE.match(line))}


def env_drift(env_texts: dict[str, str]) -> list[ConfigProblem]:
    """Env files in one folder whose key sets differ; examples and templates count as environments."""
    by_folder: dict[str, dict[str, set[str]]] = defaultdict(dict)
    for path, text in env_texts.items():
        by_folder[str(PurePosixPath(path).parent)][path] = env_keys(text)
    found = []
    for files in by_folder.values():
        if len(files) < 2:
            continue
        union = set().union(*files.values())
        for path, keys in sorted(files.items()):
            missing = sorted(union - keys)
            if missing:
                having = sorted(p for p, k in files.items() if set(missing) & k)
                shown = ", ".join(missing[:10]) + (
                    f" and {len(missing) - 10} more" if len(missing) > 10 else ""
                )
                problem = _problem(
                    path,
                    "env_drift",
                    f"lacks {len(missing)} key(s) that {', '.join(having)} define(s): {shown}",
                    "define every key in every environment's file (an empty value is a decision; a missing key is an accident)",
                )
                # The key names are the other files' content: shown only where all of them may be.
                problem.compared_with = having
                found.append(problem)
    return found


async def check_config(
    ctx: DeployContext,
    paths: Annotated[
        list[str] | None,
        Field(
            description="Files to check, relative to the root; default: every YAML, JSON, TOML and env "
            "file git tracks or would track",
            max_length=MAX_FILES,
        ),
        kinds.PATHS,
    ] = None,
) -> ConfigReport:
    """Check configuration: YAML, JSON and TOML files that fail to parse (with the line), env files
    whose keys differ between environments (key names only, never values), and Kubernetes
    workloads without readiness/liveness probes, without resource requests and limits, or with a
    latest or untagged image."""
    names = list(dict.fromkeys(paths)) if paths else await config_files(ctx)
    if len(names) > MAX_FILES:
        names = names[:MAX_FILES]

    def work() -> tuple[list[ConfigProblem], int, int]:
        problems: list[ConfigProblem] = []
        envs: dict[str, str] = {}
        checked = skipped = 0
        for name in names:
            try:
                data, _, resolved = ctx.workspace.read_bytes(name, MAX_BYTES + 1)
            except (OSError, WorkspaceError) as exc:
                if paths:
                    raise DeployError(f"cannot read {name!r}: {exc}") from exc
                skipped += 1
                continue
            if len(data) > MAX_BYTES or b"\0" in data[:8192]:
                skipped += 1
                continue
            text = data.decode("utf-8", errors="replace")
            relative = resolved.relative
            if is_env_file(relative):
                envs[relative] = text
                checked += 1
                continue
            if relative.lower().endswith((".yaml", ".yml")) and "{{" in text:
                skipped += 1  # a template (Helm, Jinja): not YAML until rendered
                continue
            checked += 1
            offload.checkpoint()
            docs, problem = documents(text, relative)
            if problem is not None:
                problems.append(problem)
            for line, doc in docs:
                try:
                    problems += _workload(doc, relative, line)
                except (RecursionError, ValueError, TypeError):
                    # str() of a hex integer too long for a decimal, or of a structure nested deep
                    problems.append(
                        _problem(
                            relative,
                            "parse_error",
                            "a workload holds values that cannot be read",
                            "fix the document",
                            line,
                        )
                    )
        problems += env_drift(envs)
        return problems, checked, skipped

    problems, checked, skipped = await offload.run(work)
    shown = [p for p in problems if all([content.allows(f, follow_links=True) for f in p.content_paths()])]
    page = take_within(shown, ctx.max_chars)
    verdict: Literal["pass", "warn", "fail"] = (
        "fail" if any(p.kind == "parse_error" for p in problems) else "warn" if problems else "pass"
    )
    return ConfigReport(
        verdict=verdict,
        files_checked=checked,
        problems=page,
        total=len(problems),
        returned=len(page),
        truncated=len(page) < len(shown),
        note=join_notes(
            skipped > 0
            and f"{skipped} file(s) skipped: unreadable, binary, larger than {MAX_BYTES} bytes, or templates",
            len(shown) < len(problems)
            and f"{len(problems) - len(shown)} problem(s) are in files the policy does not let you read",
        ),
    )
