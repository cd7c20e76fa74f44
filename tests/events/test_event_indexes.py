"""The events.list filters are served by indexes in id order (keyset pages, no sort at any depth)."""

from __future__ import annotations

import asyncpg
import pytest


@pytest.mark.parametrize("column", ["issuer_id", "user_id", "client_id", "type"])
async def test_a_filtered_page_reads_an_index_in_id_order(pg: asyncpg.Pool, column: str):
    async with pg.acquire() as conn, conn.transaction():
        # The table is small here: make the planner show what it does on a large one.
        await conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r[0] for r in await conn.fetch(
            f"EXPLAIN SELECT * FROM events WHERE account_id = $1 AND {column} = $2 "
            "AND id < $3 ORDER BY id DESC LIMIT 21", "acc_x", "x", "evt_z"))
    assert "Index Scan Backward" in plan, plan
    assert "Sort" not in plan, plan
