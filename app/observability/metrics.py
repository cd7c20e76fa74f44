"""Prometheus metrics.

Process-wide: requests by method, route template and status, and their latency (recorded by the
request middleware). Per app: gauges and counters read at scrape time from the components that
own the figure. A component registers its own with `register_gauge` / `register_counter` (the
LISTEN hub, the argon2 gate, a relay, ...), or an async `register_refresher` for figures that
need a query (the webhook queue); `wire_existing` registers today's components.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

log = logging.getLogger("authpi.metrics")

REQUESTS = Counter("authpi_http_requests", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram(
    "authpi_http_request_duration_seconds", "HTTP request duration, first byte in to last byte out",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))

# A value, or {label values: value} for a labelled metric.
Reading = float | Mapping[tuple[str, ...], float]


@dataclass
class _Registered:
    kind: str  # gauge | counter
    name: str
    documentation: str
    read: Callable[[], Reading | None]
    labels: tuple[str, ...] = ()


@dataclass(eq=False)
class AppMetrics(Collector):
    """The app's scrape-time figures."""

    entries: dict[str, _Registered] = field(default_factory=dict)
    refreshers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    values: dict[str, Reading] = field(default_factory=dict)

    def collect(self) -> Iterable[Metric]:
        for entry in self.entries.values():
            try:
                reading = entry.read()
            except Exception:  # noqa: BLE001 - one broken figure must not hide the others
                log.exception("metric %s could not be read", entry.name)
                continue
            if reading is None:
                continue
            family: GaugeMetricFamily | CounterMetricFamily
            if entry.kind == "counter":
                family = CounterMetricFamily(entry.name, entry.documentation, labels=list(entry.labels))
            else:
                family = GaugeMetricFamily(entry.name, entry.documentation, labels=list(entry.labels))
            if isinstance(reading, Mapping):
                for label_values, value in reading.items():
                    family.add_metric(list(label_values), float(value))
            else:
                family.add_metric([], float(reading))
            yield family


def app_metrics(app: Any) -> AppMetrics:
    metrics = getattr(app.state, "metrics", None)
    if metrics is None:
        metrics = AppMetrics()
        app.state.metrics = metrics
        app.state.metrics_registry = CollectorRegistry(auto_describe=False)
        app.state.metrics_registry.register(metrics)
    return metrics


def register_gauge(app: Any, name: str, documentation: str, read: Callable[[], Reading | None],
                   labels: tuple[str, ...] = ()) -> None:
    """A gauge read when /metrics is scraped (re-registering a name replaces it)."""
    app_metrics(app).entries[name] = _Registered("gauge", name, documentation, read, labels)


def register_counter(app: Any, name: str, documentation: str, read: Callable[[], Reading | None],
                     labels: tuple[str, ...] = ()) -> None:
    """A monotonic count kept by a component, read when /metrics is scraped."""
    app_metrics(app).entries[name] = _Registered("counter", name, documentation, read, labels)


def register_refresher(app: Any, refresh: Callable[[], Awaitable[None]]) -> None:
    """An async step run before each scrape (e.g. a query) that updates values read by gauges."""
    app_metrics(app).refreshers.append(refresh)


async def render(app: Any) -> tuple[bytes, str]:
    metrics = app_metrics(app)
    for refresh in metrics.refreshers:
        try:
            await asyncio.wait_for(refresh(), timeout=2.0)
        except Exception as exc:  # noqa: BLE001 - a scrape answers with what it has
            log.warning("metrics refresh failed: %s", type(exc).__name__)
    body = generate_latest(REGISTRY) + generate_latest(app.state.metrics_registry)
    return body, CONTENT_TYPE_LATEST


# -- today's components -------------------------------------------------------------------------

def _state(app: Any, name: str) -> Any:
    return getattr(app.state, name, None)


def _oldest_age_seconds(pending: list[Any]) -> float:
    if not pending:
        return 0.0
    first = pending[0]
    stamp = first.get("timestamp") if isinstance(first, dict) else first[2]
    return max(0.0, time.time() - stamp / 1000) if stamp else 0.0


def wire_existing(app: Any) -> None:
    """Register the figures of the components that exist today (each reads app.state lazily)."""

    def verifier_stats() -> Reading | None:
        verifier = _state(app, "key_verifier")
        if verifier is None:
            return None
        return {("hit",): verifier.stats["warm"], ("miss",): verifier.stats["cold"]}

    register_counter(app, "authpi_key_cache_lookups", "API-key verifications by cache result",
                     verifier_stats, ("result",))

    def argon2(attr: str) -> Callable[[], Reading | None]:
        def read() -> Reading | None:
            kit = _state(app, "runtime")
            return None if kit is None else getattr(kit.argon2, attr)
        return read

    register_gauge(app, "authpi_argon2_pending", "argon2 verifications queued or running", argon2("pending"))
    register_gauge(app, "authpi_argon2_max_pending", "argon2 queue bound (AUTHPI_ARGON2_MAX_PENDING)",
                   argon2("max_pending"))
    register_counter(app, "authpi_argon2_hashes", "argon2 verifications run", argon2("hashes"))

    def batcher(read: Callable[[Any], float]) -> Callable[[], Reading | None]:
        def value() -> Reading | None:
            b = _state(app, "event_batcher")
            return None if b is None else read(b)
        return value

    register_gauge(app, "authpi_event_batch_pending", "metered events queued, not yet written",
                   batcher(lambda b: b.pending))
    register_gauge(app, "authpi_event_batch_lag_seconds", "age of the oldest metered event not yet written",
                   batcher(lambda b: _oldest_age_seconds(b._pending)))
    register_counter(app, "authpi_event_batch_written", "metered events written",
                     batcher(lambda b: b.written))
    register_counter(app, "authpi_event_batch_dropped", "metered events dropped (backlog full)",
                     batcher(lambda b: b.dropped))

    def pools() -> Reading | None:
        out: dict[tuple[str, ...], float] = {}
        db = _state(app, "db")
        if db is not None:
            pool = db.engine.pool
            out[("orm", "in_use")] = pool.checkedout()
            out[("orm", "size")] = pool.size()
            out[("orm", "overflow")] = max(0, pool.overflow())
        kit = _state(app, "runtime")
        hot = None if kit is None else kit.pool
        if hot is not None:
            out[("hot_path", "in_use")] = hot.get_size() - hot.get_idle_size()
            out[("hot_path", "size")] = hot.get_size()
        relay_db = _state(app, "webhook_relay_db")
        if relay_db is not None:
            out[("webhook_relay", "in_use")] = relay_db.engine.pool.checkedout()
            out[("webhook_relay", "size")] = relay_db.engine.pool.size()
        return out

    register_gauge(app, "authpi_db_pool_connections", "database connections per pool", pools,
                   ("pool", "state"))

    def listeners() -> Reading | None:
        # One LISTEN/NOTIFY hub per process (app/runtime/hub.py) serves every cache.
        kit = _state(app, "runtime")
        return None if kit is None else {("hub",): 1.0 if kit.hub.connected else 0.0}

    register_gauge(app, "authpi_listen_connected", "LISTEN/NOTIFY connection up (1) or down (0)",
                   listeners, ("listener",))

    def relay_delivered() -> Reading | None:
        relay = _state(app, "webhook_relay")
        return None if relay is None else relay.delivered

    register_counter(app, "authpi_webhook_attempts", "webhook delivery attempts made by this process",
                     relay_delivered)

    webhook: dict[str, float] = {}

    async def refresh_webhooks() -> None:
        from sqlalchemy import text

        db = _state(app, "db")
        if db is None:
            return
        async with db.engine.connect() as conn:
            row = (await conn.execute(text(
                "SELECT count(*), min(created_at) FROM webhook_deliveries WHERE status = 'pending'"))).one()
            failing = (await conn.execute(text(
                "SELECT count(*) FROM webhooks WHERE consecutive_failures > 0"))).scalar_one()
        webhook["depth"] = float(row[0])
        webhook["age"] = max(0.0, time.time() - row[1] / 1000) if row[1] else 0.0
        webhook["failing"] = float(failing)

    register_refresher(app, refresh_webhooks)
    register_gauge(app, "authpi_webhook_queue_depth", "webhook deliveries pending (all replicas)",
                   lambda: webhook.get("depth"))
    register_gauge(app, "authpi_webhook_queue_oldest_seconds", "age of the oldest pending webhook delivery",
                   lambda: webhook.get("age"))
    register_gauge(app, "authpi_webhook_endpoints_failing", "webhook endpoints whose last delivery failed",
                   lambda: webhook.get("failing"))
