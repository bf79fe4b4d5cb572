"""The physical floor of the peer grid: a plain httpx loop, one chat completion per cell.

Run as its own process (`python benchmarks/raw_loop.py GRID URL`) so that, like benchlib and the
peers, its wall time includes interpreter start and imports; overhead.py and peers.py both time it
that way.
"""

import json
import sys
from pathlib import Path

import httpx


def render(messages: list[dict[str, str]], scenario: dict[str, str]) -> list[dict[str, str]]:
    """The grid's `{{var}}` placeholders filled in, as every harness renders them."""
    rendered = []
    for message in messages:
        text = message["content"]
        for key, value in scenario.items():
            text = text.replace("{{" + key + "}}", str(value))
        rendered.append({"role": message["role"], "content": text})
    return rendered


def run(grid: Path, url: str) -> None:
    prompts = json.loads((grid / "prompts.json").read_text())
    scenarios = json.loads((grid / "scenarios.json").read_text())
    params = json.loads((grid / "params.json").read_text())
    with httpx.Client(base_url=url, timeout=120) as client:
        for messages in prompts.values():
            for scenario in scenarios:
                body = {
                    "model": params["model"],
                    "messages": render(messages, scenario),
                    "temperature": params["temperature"],
                    "max_tokens": params["max_tokens"],
                }
                client.post("/v1/chat/completions", json=body).raise_for_status()


if __name__ == "__main__":
    run(Path(sys.argv[1]), sys.argv[2])
