"""A merge landing commits its groups without a checkpoint at each commit (issue #26: the
checkpoints took 4 of 9.8 s re-landing 300 MB in which everything changed); what it committed
is in the file once it is closed, and DuckDB's settings are as they were."""

from __future__ import annotations

from pathlib import Path

import duckdb

from fhir_assets.warehouse.duckdb import DuckDBWarehouse
from fhir_assets.warehouse.inputs import ndjson_blocks
from fhir_assets.warehouse.landing import land
from fhir_assets.warehouse.protocol import Provenance

from .test_land_memory import ROWS, write_observations

MIB = 1024**2


def test_merge_groups_commit_without_a_checkpoint_each_and_stay_after_close(
    tmp_path: Path,
) -> None:
    database = tmp_path / "w.duckdb"
    first = write_observations(tmp_path / "v1", "1") / "Observation.ndjson"
    changed = write_observations(tmp_path / "v2", "2") / "Observation.ndjson"
    with duckdb.connect(str(database)) as con:
        before = con.execute(
            "SELECT current_setting('threads'), current_setting('checkpoint_threshold')"
        ).fetchall()
        warehouse = DuckDBWarehouse(con, memory_limit="128MB", commit_rows=5_000)
        at = Provenance.now("https://s/fhir", "sync-1")
        land(warehouse, "Observation", ndjson_blocks(first), at)
        result = land(
            warehouse, "Observation", ndjson_blocks(changed), Provenance.now(at.source_server, "2")
        )
        assert (result.updated, result.landed, result.quarantined) == (ROWS, 0, 0)
        # nine groups of 5,000 rows, ~25 MB of changes: DuckDB's default 16 MiB threshold
        # would have checkpointed (and emptied the log) at one of the commits
        assert (tmp_path / "w.duckdb.wal").stat().st_size > 16 * MIB
        after = con.execute(
            "SELECT current_setting('threads'), current_setting('checkpoint_threshold')"
        ).fetchall()
        assert after == before
    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.execute(
            "SELECT version_id, COUNT(*), COUNT(DISTINCT id) FROM fhir_raw.observation GROUP BY ALL"
        ).fetchall()
    assert rows == [("2", ROWS, ROWS)]
