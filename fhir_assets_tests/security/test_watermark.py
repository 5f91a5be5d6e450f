"""Issue 23 finding 3: a resource dated in the future (9999-12-31) lands, is flagged, and never
moves the sync cursor: the next ``fhir-assets sync`` still searches from the real newest row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import duckdb
import pytest

from fhir_assets.fhir.client import FhirClient
from fhir_assets.fhir.profiles import PROFILES
from fhir_assets.fhir.search import SyncStats, search_window
from fhir_assets.fhir.window import Query, Window
from fhir_assets_tests.cli.conftest import Run, run  # noqa: F401 - fixture
from fhir_assets_tests.security.evil import EvilServer, evil_servers, json_route, reply

REAL = "2026-03-01T10:00:00.000Z"
FUTURE = "9999-12-31T00:00:00.000Z"
CAPABILITY = {"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1", "kind": "instance",
              "status": "active", "format": ["json"], "software": {"name": "evil"}}  # fmt: skip


def patient(pid: str, updated: str) -> dict[str, object]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "meta": {"versionId": "1", "lastUpdated": updated},
    }


def serve_patients(server: EvilServer, searched: list[dict[str, list[str]]]) -> None:
    def search(seen, h):  # type: ignore[no-untyped-def]
        query = parse_qs(urlsplit(seen.path).query)
        searched.append(query)
        entries = [{"resource": patient("p1", REAL)}, {"resource": patient("p9", FUTURE)}]
        reply(h, 200, {"resourceType": "Bundle", "type": "searchset", "total": 2,
                       "entry": [dict(e, search={"mode": "match"}) for e in entries]})  # fmt: skip

    server.route("/fhir/metadata", json_route(CAPABILITY))
    server.route("/fhir/Patient", search)


def test_future_last_updated_never_blocks_the_next_sync(run: Run, tmp_path: Path) -> None:  # noqa: F811
    searched: list[dict[str, list[str]]] = []
    with evil_servers(1) as (server,):
        serve_patients(server, searched)
        env = {"FHIR_BASE_URL": f"{server.url}/fhir", "FHIR_SERVER_PROFILE": "generic"}
        first = run("sync", "--type", "Patient", env=env)
        assert first.returncode == 0, first.stderr
        assert "outside" in first.stderr and "never used as the sync cursor" in first.stderr
        again = run("sync", "--type", "Patient", env=env)
    assert again.returncode == 0, again.stderr
    assert "nothing to sync" not in again.stdout
    # the second search starts at the real newest row, not at 9999
    since = [v for q in searched[-1:] for v in q.get("_lastUpdated", []) if v.startswith("ge")]
    assert since == ["ge" + REAL], searched
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as db:
        ids = db.execute("SELECT id FROM fhir_raw.patient ORDER BY id").fetchall()
    assert ids == [("p1",), ("p9",)]  # landed as the server sent it (documented rule)


def test_outside_window_is_counted_for_metadata() -> None:
    with evil_servers(1) as (server,):
        serve_patients(server, [])
        now = datetime.now(UTC)
        window = Window(datetime(2026, 1, 1, tzinfo=UTC), now + timedelta(minutes=1))
        stats = SyncStats()
        with FhirClient(f"{server.url}/fhir") as client:
            pages = list(search_window(client, Query("Patient", window=window),
                                       PROFILES["generic"], stats))  # fmt: skip
    assert [len(p) for p in pages] == [2]
    assert stats["outside_window"] == 1


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FHIR_ALLOW_INSECURE_HTTP", raising=False)
