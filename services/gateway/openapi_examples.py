"""Examples of every answer in the OpenAPI document, taken from a real gateway.

``openapi_examples.json`` maps a response model's name to one real answer (lists cut to one item).
``add_examples`` puts each into the model's schema (``components.schemas.<Name>.examples``), so
Swagger UI and ReDoc show them; a unit test checks that every answer model has one and that each
still validates against its model, so the examples cannot drift from the code.

Regenerate against a running gateway with data (``make demo``), with an admin key:
``python -m services.gateway.openapi_examples --gateway http://127.0.0.1:8000 --key lk_…``
"""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

EXAMPLES_FILE = Path(__file__).with_name("openapi_examples.json")
KEPT = ("ReplayAccepted",)


def load() -> dict[str, Any]:
    examples: dict[str, Any] = json.loads(EXAMPLES_FILE.read_text(encoding="utf-8"))
    return examples


def add_examples(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.get("components", {}).get("schemas", {})
    for name, example in load().items():
        if name in components:
            components[name]["examples"] = [example]
    return schema


def _trim(value: Any) -> Any:
    """Lists of objects cut to one item, other lists to 12, recursively: an example shows the
    shape, not the data."""
    if isinstance(value, list):
        keep = 1 if value and isinstance(value[0], dict) else 12
        return [_trim(v) for v in value[:keep]]
    if isinstance(value, dict):
        return {k: _trim(v) for k, v in value.items()}
    return value


def _get(base: str, path: str, key: str | None, method: str = "GET", body: Any = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 - the operator's gateway
            return json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())


def collect(base: str, key: str) -> dict[str, Any]:
    runs = _get(base, "/runs?limit=1", key)
    run = runs["items"][0]
    staged = _get(base, "/staging?start_date=2020-09-14&end_date=2020-09-14&limit=1", key)
    tid = staged["items"][0]["twitter_id"]
    curated = _get(base, "/curated?start_date=2020-09-14&end_date=2020-09-14&limit=1", key)
    examples = {
        name: _trim(value)
        for name, value in {
            "Health": _get(base, "/health", None),
            "Stats": _get(base, "/stats", key),
            "DailyStats": _get(base, "/stats/daily?start_date=2020-09-14&end_date=2020-09-15", key),
            "RawPage": _get(base, "/raw?limit=1", key),
            "StagedPage": staged,
            "StagedTweetDetail": _get(base, f"/staging/{tid}", key),
            "CuratedPage": curated,
            "CuratedDetail": _get(base, f"/curated/{tid}", key),
            "RunAccepted": {"run_id": run["run_id"]},
            "RunList": runs,
            "RunReport": run,
            "PipelineState": _get(base, "/pipeline", key),
            "DeadLetterPage": _get(base, "/dead-letters?limit=1", key),
            # a letter that does not exist: an example must never redrive the operator's letters
            "RedriveAnswer": _get(base, "/dead-letters/redrive", key, "POST", {"letter_id": "example/0/0"}),
            "Overview": _get(base, "/dashboard/overview", key),
            "ErrorResponse": _get(base, "/stats", "lk_unknown_key"),
        }.items()
    }
    # answers no collector may provoke on an operator's gateway (a replay rebuilds a run): the
    # answer recorded from a real gateway before is kept
    for name in KEPT:
        examples[name] = load()[name]
    failed = {n: v["error"] for n, v in examples.items() if n != "ErrorResponse" and set(v) == {"error"}}
    if failed:  # e.g. a /curated list over the query time limit: raise LAKE_GATEWAY_QUERY_TIMEOUT_S
        raise SystemExit(f"the gateway answered errors, no example written: {failed}")
    return examples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gateway", default="http://127.0.0.1:8000")
    parser.add_argument("--key", required=True, help="an admin key")
    args = parser.parse_args(argv)
    examples = collect(args.gateway.rstrip("/"), args.key)
    EXAMPLES_FILE.write_text(json.dumps(examples, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(examples)} examples written to {EXAMPLES_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
