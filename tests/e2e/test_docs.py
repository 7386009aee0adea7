"""The API's own documentation: tags per area, real error models, assets served locally, and
the configuration it reports matching where the server listens."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.api_docs import ErrorBody
from tests.serverproc import Server

pytestmark = pytest.mark.e2e


async def test_openapi_documents_tags_and_the_real_error_body(client: httpx.AsyncClient) -> None:
    schema: dict[str, Any] = (await client.get("/openapi.json")).json()
    text = str(schema)
    assert "HTTPValidationError" not in text  # the 422 body is {error, detail, field}
    assert {t["name"] for t in schema["tags"]} >= {
        "memories", "chunks", "sessions", "media", "analytics", "admin", "health",
    }  # fmt: skip
    ops = [(m, p, o) for p, item in schema["paths"].items() for m, o in item.items()]
    for method, path, op in ops:
        assert op.get("tags") and op["tags"] != ["default"], (method, path)
        assert not op["operationId"].endswith(f"_{method}"), op["operationId"]
        for status, response in op["responses"].items():
            if int(status) >= 400:
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/ErrorBody", (method, path, status)
    chunk = schema["paths"]["/api/memories/{memory_id}/chunks"]["post"]
    assert chunk["operationId"] == "post_chunk"
    assert {"404", "409", "413", "422", "502"} <= set(chunk["responses"])
    journey = schema["paths"]["/api/sessions/{session_id}/journey.mp4"]["get"]
    assert {"404", "409", "422", "500"} <= set(journey["responses"])
    # The documented model is what the API really answers.
    bad = await client.post("/api/memories", json={"image_base64": "not base64!"})
    assert bad.status_code == 422
    ErrorBody.model_validate(bad.json(), strict=True)
    assert set(bad.json()) == {"error", "detail", "field"}


async def test_docs_pages_use_local_assets(client: httpx.AsyncClient) -> None:
    for page, asset in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        html = (await client.get(page)).text
        links = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert links and all(link.startswith("/") for link in links), links  # no CDN
        src = next(link for link in links if link.endswith(asset))
        r = await client.get(src)
        assert r.status_code == 200 and len(r.content) > 100_000, (page, src)


def test_admin_config_reports_the_port_serve_listens_on(database_url: str, tmp_path: Path) -> None:
    server = Server(database_url, tmp_path, tmp_path / "serve.log")  # --port <free port>
    try:
        config = httpx.get(f"{server.url}/api/admin/config", timeout=10).json()
    finally:
        server.stop()
    assert server.port != 8000
    assert config["server"]["port"] == server.port and config["server"]["host"] == "127.0.0.1"
