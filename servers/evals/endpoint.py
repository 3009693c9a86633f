"""evaluate_endpoint: a model behind HTTP called once per dataset row, then scored like predictions.

Open-world and guarded (DESIGN §7): the URL's host must be listed in `[evals] allowed_hosts`; a host
that resolves to a loopback, private, link-local (cloud metadata) or otherwise reserved address is
refused unless `[evals] allow_private_hosts` names it; redirects are not followed. Calls run with
bounded concurrency and retry with exponential backoff on 429, 5xx, timeouts and dropped connections.
Each answer is appended to a cache in the eval store, keyed by endpoint, mode, model and input, so a
rerun calls only what is missing.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio
from pydantic import BaseModel, Field

from common import content, kinds, net, offload, progress
from common.budget import Envelope, join_notes
from common.workspace import WorkspaceError
from servers.evals import frame, metrics
from servers.evals.context import EvalsContext
from servers.evals.evaluate import metric_list, save
from servers.evals.frame import EvalsError
from servers.evals.models import MetricValue, RunSummary
from servers.evals.params import Column, Dataset, RunName
from servers.evals.settings import EvalsSettings
from servers.evals.store import summary

if TYPE_CHECKING:
    import httpx

Mode = Literal["chat", "completion", "json"]
MAX_ROWS = 10_000
MAX_RETRY_AFTER_S = 30.0


class ErrorSample(BaseModel):
    row: int
    kind: str
    message: str


class EndpointEvaluation(Envelope):
    run: RunSummary
    url: str
    mode: Mode
    rows: int = Field(description="Dataset rows evaluated")
    called: int = Field(description="Rows sent to the endpoint in this call")
    cached: int = Field(description="Rows answered from the cache of an earlier call")
    errors: int = Field(description="Rows with no usable answer after retries")
    error_kinds: dict[str, int] = Field(default_factory=dict)
    error_samples: list[ErrorSample] = Field(default_factory=list, description="The first few errors")
    retries: int = Field(description="Retried requests (429, 5xx, timeouts)")
    latency_ms: dict[str, float] = Field(
        default_factory=dict, description="p50, p90, p95, p99, max over answered rows"
    )
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    metrics: list[MetricValue]


@dataclass
class Answer:
    output: str | None = None
    latency_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    kind: str | None = None
    cached: bool = False


@dataclass
class Calls:
    retries: int = 0
    done: int = 0
    answers: dict[int, Answer] = field(default_factory=dict)


def _body(mode: Mode, text: str, model: str | None) -> dict[str, Any]:
    if mode == "chat":
        return {
            "model": model or "default",
            "messages": [{"role": "user", "content": text}],
            "temperature": 0,
        }
    if mode == "completion":
        return {"model": model or "default", "prompt": text, "temperature": 0}
    return {"input": text}


def _parse(mode: Mode, data: Any) -> tuple[str, int | None, int | None]:
    """The answer text and token counts; ValueError when the response has no answer where expected."""
    usage = data.get("usage") if isinstance(data, dict) else None
    prompt = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    completion = usage.get("completion_tokens") if isinstance(usage, dict) else None
    tokens = (
        prompt if isinstance(prompt, int) else None,
        completion if isinstance(completion, int) else None,
    )
    try:
        if mode == "json":
            text = data if isinstance(data, str) else data["output"]
        else:
            choice = data["choices"][0]
            text = choice["message"]["content"] if mode == "chat" else choice["text"]
    except (KeyError, IndexError, TypeError) as exc:
        where = (
            "'output'"
            if mode == "json"
            else "choices[0].message.content"
            if mode == "chat"
            else "choices[0].text"
        )
        raise ValueError(f"the response has no {where}") from exc
    if not isinstance(text, str):
        raise ValueError("the answer is not text")
    return text, *tokens


async def _call_one(
    client: httpx.AsyncClient,
    target: net.Target,
    body: dict[str, Any],
    mode: Mode,
    options: EvalsSettings,
    calls: Calls,
) -> Answer:
    import httpx

    attempt = 0
    while True:
        started = time.perf_counter()
        retry_after: float | None = None
        try:
            url, headers, extensions = net.pinned(target)
            response = await client.post(url, json=body, headers=headers, extensions=extensions)
            latency = (time.perf_counter() - started) * 1000
            if response.status_code == 429 or response.status_code >= 500:
                kind = f"http_{response.status_code}"
                error = f"HTTP {response.status_code}"
                header = response.headers.get("retry-after")
                if header and header.strip().isdigit():
                    retry_after = min(float(header.strip()), MAX_RETRY_AFTER_S)
            elif response.status_code >= 300:
                return Answer(error=f"HTTP {response.status_code}", kind=f"http_{response.status_code}")
            else:
                try:
                    text, prompt, completion = _parse(mode, response.json())
                except ValueError as exc:
                    return Answer(error=f"malformed response: {str(exc)[:200]}", kind="malformed")
                return Answer(text, latency, prompt, completion)
        except httpx.TimeoutException:
            kind, error = "timeout", f"no answer within {options.request_timeout_s:g}s"
        except httpx.TransportError as exc:
            kind, error = "connection", f"connection failed: {type(exc).__name__}"
        if attempt >= options.retries:
            return Answer(error=f"{error} (after {attempt} retries)", kind=kind)
        attempt += 1
        calls.retries += 1
        await anyio.sleep(
            retry_after if retry_after is not None else options.retry_base_s * 2 ** (attempt - 1)
        )


def _cache_key(url: str, mode: Mode, model: str | None) -> str:
    return hashlib.sha256(json.dumps([url, mode, model]).encode("utf-8")).hexdigest()[:24]


def _input_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read_cache(path: Path) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    if not path.is_file() or path.is_symlink():
        return found
    with path.open(encoding="utf-8") as f:
        for line in f:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line torn by a crash; its row is called again
            if (
                isinstance(entry, dict)
                and isinstance(entry.get("key"), str)
                and isinstance(entry.get("output"), str)
            ):
                found[entry["key"]] = entry
    return found


def _read_rows(path: Path, input_col: str, label_col: str, limit: int) -> list[tuple[str | None, str | None]]:
    con = frame.open_locked([path])
    try:
        source = frame.reader(path)
        available = frame.columns_of(con, source)
        for name, what in ((input_col, "input"), (label_col, "label")):
            if name not in available:
                shown = ", ".join(repr(c) for c in list(available)[:50])
                raise EvalsError(f"{what} column {name!r} is not in the dataset; its columns are: {shown}")
        q = frame.quote_ident
        rows = con.execute(
            f"SELECT CAST({q(input_col)} AS VARCHAR), CAST({q(label_col)} AS VARCHAR) FROM {source} LIMIT {int(limit)}"
        ).fetchall()
        return [(r[0], r[1]) for r in rows]
    finally:
        con.close()


def _normalise(text: str) -> str:
    return " ".join(text.split()).casefold()


def _score(labels: list[str], outputs: list[str]) -> metrics.Values:
    con = frame.open_locked([])
    try:
        con.execute("CREATE TABLE base (i BIGINT, y VARCHAR, yhat VARCHAR, s DOUBLE)")
        con.executemany(
            "INSERT INTO base VALUES (?, ?, ?, NULL)",
            [(i, y, p) for i, (y, p) in enumerate(zip(labels, outputs, strict=True))],
        )
        return metrics.compute(con, "multiclass", frame.point(), has_score=False)[0]
    finally:
        con.close()


def _percentiles(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {}
    out = {f"p{q}": round(metrics.percentile(latencies, q), 3) for q in (50, 90, 95, 99)}
    out["max"] = round(max(latencies), 3)
    return out


async def evaluate_endpoint(
    ctx: EvalsContext,
    url: Annotated[
        str,
        Field(description="The endpoint, e.g. 'https://llm.internal/v1/chat/completions'", max_length=2000),
        kinds.URL,
    ],
    dataset: Dataset,
    input: Annotated[Column, Field(description="The column whose text is sent to the endpoint")],
    label: Annotated[Column, Field(description="The column of expected answers")],
    mode: Annotated[
        Mode,
        Field(
            description="chat: OpenAI-compatible chat completions; completion: OpenAI-compatible completions; "
            "json: POST {'input': text}, answer in 'output'"
        ),
    ] = "chat",
    concurrency: Annotated[int, Field(ge=1, le=64, description="Requests in flight at once")] = 4,
    limit: Annotated[int | None, Field(ge=1, le=MAX_ROWS, description="Only the first N rows")] = None,
    model: Annotated[
        str | None, Field(max_length=200, description="The model name sent in chat and completion mode")
    ] = None,
    name: Annotated[RunName | None, Field(description="Record the result as a run of this name")] = None,
) -> EndpointEvaluation:
    """Call a model endpoint once per dataset row and score its answers against the labels (exact
    match after trimming and case folding: accuracy and precision/recall/F1 micro, macro, weighted).
    Concurrency is bounded; 429, 5xx and timeouts are retried with backoff; answers are cached in the
    eval store, so a rerun calls only rows without an answer. Reports latency percentiles, tokens and
    errors, and records a run. Only hosts allowed in [evals] allowed_hosts are called."""
    import httpx

    options = ctx.options
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise EvalsError(f"url {url!r} is not a valid URL: {exc}") from exc
    try:
        # Resolved once; every request goes to this address (common.net).
        target = await net.pin(parsed, options.allowed_hosts, options.allow_private_hosts, "evals")
    except net.HostRefused as exc:
        raise EvalsError(str(exc)) from exc
    resolved = ctx.workspace.resolve(dataset)
    if not content.allows(resolved.relative, follow_links=True):
        raise WorkspaceError(f"path {dataset!r} may not be read under the policy; it is not evaluated")
    rows = await offload.run(_read_rows, resolved.absolute, input, label, limit or MAX_ROWS)
    if not rows:
        raise EvalsError(f"dataset {dataset!r} has no rows")
    cache_dir = await offload.run(ctx.store.cache_dir)
    cache_path = cache_dir / f"{_cache_key(str(parsed), mode, model)}.jsonl"
    cache = await offload.run(_read_cache, cache_path)
    calls = Calls()
    todo: list[int] = []
    for i, (text, _) in enumerate(rows):
        if text is None:
            calls.answers[i] = Answer(error="the input is empty", kind="no_input")
        elif (hit := cache.get(_input_key(text))) is not None:
            calls.answers[i] = Answer(
                hit["output"],
                hit.get("latency_ms"),
                hit.get("prompt_tokens"),
                hit.get("completion_tokens"),
                cached=True,
            )
        else:
            todo.append(i)
    limiter = anyio.Semaphore(min(concurrency, options.max_concurrency))
    lock = anyio.Lock()

    async def run_row(client: httpx.AsyncClient, i: int, cache_file: Any) -> None:
        text = rows[i][0]
        assert text is not None
        async with limiter:
            answer = await _call_one(client, target, _body(mode, text, model), mode, options, calls)
        calls.answers[i] = answer
        async with lock:
            if answer.output is not None:
                entry = {
                    "key": _input_key(text),
                    "output": answer.output,
                    "latency_ms": answer.latency_ms,
                    "prompt_tokens": answer.prompt_tokens,
                    "completion_tokens": answer.completion_tokens,
                }
                cache_file.write(json.dumps(entry) + "\n")
                cache_file.flush()
            calls.done += 1
            await progress.report(calls.done, len(todo), f"{calls.done}/{len(todo)} rows called")

    if todo:
        timeout = httpx.Timeout(options.request_timeout_s)
        with cache_path.open("a", encoding="utf-8") as cache_file:
            async with (
                httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client,
                anyio.create_task_group() as tg,
            ):
                for i in todo:
                    tg.start_soon(run_row, client, i, cache_file)
    return await _finish(ctx, parsed, mode, model, dataset, input, label, name, rows, calls, len(todo))


async def _finish(
    ctx: EvalsContext,
    url: httpx.URL,
    mode: Mode,
    model: str | None,
    dataset: str,
    input_col: str,
    label_col: str,
    name: str | None,
    rows: list[tuple[str | None, str | None]],
    calls: Calls,
    called: int,
) -> EndpointEvaluation:
    answered = [
        (i, a) for i, a in sorted(calls.answers.items()) if a.output is not None and rows[i][1] is not None
    ]
    errors = [(i, a) for i, a in sorted(calls.answers.items()) if a.output is None]
    kinds_seen: dict[str, int] = {}
    for _, a in errors:
        kinds_seen[a.kind or "error"] = kinds_seen.get(a.kind or "error", 0) + 1
    latencies = [a.latency_ms for _, a in answered if a.latency_ms is not None]
    prompt = [a.prompt_tokens for _, a in answered if a.prompt_tokens is not None]
    completion = [a.completion_tokens for _, a in answered if a.completion_tokens is not None]
    notes = []
    point = metrics.Values()
    if answered:
        labels = [_normalise(rows[i][1] or "") for i, _ in answered]
        outputs = [_normalise(a.output or "") for _, a in answered]
        point = await offload.run(_score, labels, outputs)
    else:
        for metric in metrics.CLASSIFICATION:
            point.reasons[metric] = "no row was answered"
    if errors:
        notes.append(f"{len(errors)} of {len(rows)} rows have no answer and are left out of the metrics")
    if len(rows) == MAX_ROWS:
        notes.append(f"only the first {MAX_ROWS} rows of the dataset were evaluated")
    lat = _percentiles(latencies)
    values = dict(point.values)
    values |= {f"latency_{k}_ms": v for k, v in lat.items() if k in ("p50", "p95")}
    values["error_rate"] = len(errors) / len(rows)
    items = [
        {
            "id": str(i),
            "y": _normalise(rows[i][1] or ""),
            "yhat": _normalise(a.output or ""),
            "s": None,
            "g": None,
        }
        for i, a in answered
    ]
    run, _ = await save(
        ctx,
        name or "endpoint",
        "endpoint",
        "multiclass",
        values,
        n=len(answered),
        reasons=point.reasons,
        params={
            "url": str(url),
            "mode": mode,
            "model": model,
            "dataset": dataset,
            "input": input_col,
            "label": label_col,
        },
        items=items,
    )
    return EndpointEvaluation(
        run=summary(run),
        url=str(url),
        mode=mode,
        rows=len(rows),
        called=called,
        cached=sum(1 for a in calls.answers.values() if a.cached),
        errors=len(errors),
        error_kinds=kinds_seen,
        error_samples=[
            ErrorSample(row=i, kind=a.kind or "error", message=a.error or "") for i, a in errors[:5]
        ],
        retries=calls.retries,
        latency_ms=lat,
        prompt_tokens=sum(prompt) if prompt else None,
        completion_tokens=sum(completion) if completion else None,
        metrics=metric_list("multiclass", point, {}),
        note=join_notes(*notes),
    )
