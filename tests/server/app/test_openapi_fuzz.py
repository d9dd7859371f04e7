"""Property test: requests generated from the app's own OpenAPI schema never get a 5xx,
and every answer's status code and media type are documented in that schema.

Each operation gets parameters and bodies drawn from its schema (valid-looking
values) mixed with arbitrary JSON and text (invalid ones), sent with an
operator token, a viewer token or none. Any status >= 500 (other than the
documented 502 of an e-stop a bridge did not confirm, and 503 when a bridge
is unreachable) fails the test. WebSockets are not in the schema; their bad
input is covered in test_control_ws.py.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from app_helpers import auth, make_settings
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_episodes_api import write_episode

from server.app import create_app
from server.fake_bridge import FakeBridge
from tandem.messages import EpisodeKind

EXAMPLES = int(os.environ.get("TANDEM_FUZZ_EXAMPLES", "40"))  # per operation; raise to explore
ALLOWED_5XX = {"/api/estop": {502}, "/api/estop/clear": {502}}
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


def from_schema(
    schema: dict[str, Any], components: dict[str, Any], depth: int = 0
) -> st.SearchStrategy[Any]:
    """A rough strategy for a JSON schema: conforming values most of the time, junk sometimes."""
    if "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    if depth > 4:
        return JSON_VALUES
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        return st.one_of([from_schema(o, components, depth + 1) for o in options])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if kind == "string" and schema.get("format") == "date-time":
        return st.datetimes().map(lambda d: d.isoformat() + "Z")
    if kind == "string":
        return st.text(max_size=40) | st.sampled_from(
            ["roll1", "demo1", "robot0", "front", "0", ""]
        )
    if kind == "integer":
        edges = [0, 1, 2, 50, 100, 500, 999, 1000, 1001, 10**6, 2**31, 2**63]
        for bound in ("minimum", "maximum"):
            if bound in schema:
                edges += [schema[bound] - 1, schema[bound], schema[bound] + 1]
        return st.sampled_from(edges) | st.integers(min_value=-5, max_value=10**12)
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False, width=32)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {}), components, depth + 1), max_size=3)
    if kind == "object":
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: from_schema(v, components, depth + 1) for k, v in props.items() if k in required},
            optional={
                k: from_schema(v, components, depth + 1)
                for k, v in props.items()
                if k not in required
            },
        )
    return JSON_VALUES


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, methods in schema["paths"].items()
        for method, op in methods.items()
        if method in {"get", "post", "delete", "put", "patch"}
    ]


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("fuzz")
    bridge = FakeBridge().start()
    app_settings = make_settings(Path(tmp), [bridge], command_timeout_s=0.2)
    with TestClient(create_app(app_settings, record=False)) as client:
        store = client.app.state.tandem.store  # type: ignore[attr-defined]
        for i, kind in enumerate((EpisodeKind.DEMO, EpisodeKind.ROLLOUT)):
            write_episode(
                store.episodes, ("demo1", "roll1")[i], kind, time.time() - 100 + i, intervene=(1,)
            )
        store.episodes.reconcile()
        ids = {
            "op": store.auth.create_operator("op", "operator", "pw-pw-pw").id,
            "viewer": store.auth.create_operator("v", "viewer", "pw-pw-pw").id,
        }
        yield client, ids
    bridge.stop()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_no_operation_answers_5xx(fuzz_app: Any) -> None:
    client, ids = fuzz_app
    schema = client.get("/openapi.json").json()
    components = schema.get("components", {}).get("schemas", {})
    ops = operations(schema)
    assert len(ops) >= 20, [f"{m} {p}" for p, m, _ in ops]
    for path, method, op in ops:
        _fuzz_operation(client, ids=ids, components=components, path=path, method=method, op=op)


def _fuzz_operation(
    client: TestClient,
    *,
    ids: dict[str, int],
    components: dict[str, Any],
    path: str,
    method: str,
    op: dict[str, Any],
) -> None:
    params = op.get("parameters", [])
    body_schema = (
        op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    )

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        url = path
        query: dict[str, str] = {}
        junk = data.draw(st.integers(0, 3)) == 0  # a quarter of requests carry junk values
        rerouted = False
        for p in params:
            if p["in"] not in ("path", "query"):
                continue
            if p["in"] == "query" and not p.get("required") and data.draw(st.booleans()):
                continue
            strategy = from_schema(p.get("schema", {}), components)
            value = data.draw(strategy | JSON_VALUES if junk else strategy)
            if value is None and p["in"] == "query":
                continue
            text = value if isinstance(value, str) else json.dumps(value)
            if p["in"] == "path":
                url = url.replace("{" + p["name"] + "}", quote(text, safe="") or "x")
                # "/" or a dot segment ("." "..") makes the router see another path
                rerouted = rerouted or "/" in text or text in (".", "..")
            else:
                query[p["name"]] = text
        who = data.draw(st.sampled_from(["op", "op", "viewer", None]))
        store = client.app.state.tandem.store  # type: ignore[attr-defined]
        # a fresh token per request: the fuzzer may call /api/auth/logout, which revokes it
        headers = auth(store.auth.issue_token(ids[who], 60)) if who else {}
        kwargs: dict[str, Any] = {"params": query, "headers": headers}
        if body_schema is not None:
            strategy = from_schema(body_schema, components)
            body = data.draw(strategy | JSON_VALUES if junk else strategy)
            kwargs["content"] = json.dumps(body)
            headers["content-type"] = "application/json"
        response = client.request(method.upper(), url, **kwargs)
        allowed = ALLOWED_5XX.get(path, set())
        assert response.status_code < 500 or response.status_code in allowed, (
            f"{method.upper()} {url} {query} -> {response.status_code}: {response.text[:300]}"
        )
        if rerouted:  # the request addressed another route (404, 405): not this operation
            return
        documented = op.get("responses", {})
        assert str(response.status_code) in documented, (
            f"{method.upper()} {path}: status {response.status_code} is not in the schema "
            f"(documented: {sorted(documented)}): {response.text[:200]}"
        )
        _check_media_type(method, path, response, documented[str(response.status_code)])

    check()


def _check_media_type(method: str, path: str, response: Any, spec: dict[str, Any]) -> None:
    """A body the schema describes has one of the documented media types."""
    content = spec.get("content")
    if not content or not response.content:
        return
    media = response.headers.get("content-type", "").split(";")[0].strip()
    assert media in content, (
        f"{method.upper()} {path} -> {response.status_code} sent {media!r}, "
        f"the schema documents {sorted(content)}"
    )


@pytest.mark.parametrize("body", ["Infinity", "NaN", "[-Infinity]", '{"outcome": NaN}'])
def test_non_standard_json_constants_are_a_422(fuzz_app: Any, body: str) -> None:
    """Python's parser accepts NaN/Infinity; echoing them in the error must not crash."""
    client, ids = fuzz_app
    token = client.app.state.tandem.store.auth.issue_token(ids["op"], 60)
    urls = ["/api/auth/exchange", "/api/episodes/roll1/label"]
    if not body.startswith("{"):  # e-stop ignores unknown fields on purpose
        urls.append("/api/estop")
    for url in urls:
        response = client.post(
            url, content=body, headers={**auth(token), "content-type": "application/json"}
        )
        assert response.status_code == 422, (url, response.text)
        json.loads(response.text)  # strict JSON
