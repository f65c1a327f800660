"""On-demand SageMaker prices (USD per instance-hour) from the AWS Price List API, cached.

GetProducts (ServiceCode ``AmazonSageMaker``) answers products whose ``attributes`` carry
``regionCode``, ``component`` ("Training", "Processing", "Hosting", ...) and ``instanceName``
("ml.m5.large"); each ``PriceList`` item is a JSON *string* holding ``product`` and ``terms``:
``terms.OnDemand.<offer>.priceDimensions.<dim>.pricePerUnit.USD`` per ``unit`` "Hrs". The API
is served in us-east-1 (also ap-south-1, eu-central-1) whatever region the prices are for.

Prices change rarely: one page set per job type per region is fetched at most once a week and
kept, with its date, in ``$XDG_CACHE_HOME/ssm_rules`` (default ``~/.cache/ssm_rules``).
Without credentials or network the plan says so once and counts instance-hours instead.
"""

from __future__ import annotations

import datetime
import itertools
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssm_rules.backends.base import JobType

log = logging.getLogger(__name__)

PRICING_API_REGION = "us-east-1"
REFRESH_AFTER = datetime.timedelta(days=7)
# Price List "component" of each job type (the usage types are "<region>-Train:<type>" and
# "<region>-Processing:<type>")
COMPONENTS = {JobType.TRAINING: "Training", JobType.PROCESSING: "Processing"}
MAX_PAGES = 100  # ever new NextTokens would be a service bug, not a reason to spin forever


@dataclass(frozen=True)
class PriceTable:
    """On-demand USD per instance-hour of one region, as fetched on ``fetched``."""

    region: str
    fetched: datetime.date
    hourly: dict[str, float] = field(default_factory=dict)  # "Training:ml.m5.large" → USD

    def price(self, job_type: JobType, instance_type: str) -> float | None:
        return self.hourly.get(f"{COMPONENTS[job_type]}:{instance_type}")

    def to_json(self) -> str:
        return json.dumps(
            {"region": self.region, "fetched": self.fetched.isoformat(), "hourly": self.hourly},
            indent=1,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> PriceTable:
        doc = json.loads(text)
        return cls(
            region=doc["region"],
            fetched=datetime.date.fromisoformat(doc["fetched"]),
            hourly={k: float(v) for k, v in doc["hourly"].items()},
        )


@dataclass(frozen=True)
class Prices:
    """What the plan prices with: a table (maybe None) and, without one, why."""

    table: PriceTable | None
    unavailable: str = ""  # why there are no dollars ("" when there is a table)

    def price(self, job_type: JobType, instance_type: str) -> float | None:
        return self.table.price(job_type, instance_type) if self.table else None


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ssm_rules"


def cache_file(region: str) -> Path:
    return cache_dir() / f"sagemaker-prices-{region}.json"


def read_cache(region: str) -> PriceTable | None:
    try:
        return PriceTable.from_json(cache_file(region).read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing or unreadable: as good as none


def write_cache(table: PriceTable) -> None:
    path = cache_file(table.region)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(table.to_json())
    tmp.replace(path)  # atomic: two runs refreshing at once never leave half a file


def on_demand_hourly(item: dict[str, Any]) -> tuple[str, float] | None:
    """``("Training:ml.m5.large", 0.115)`` of one PriceList product, None when it is not an
    hourly on-demand USD price of a training or processing instance."""
    attributes = item.get("product", {}).get("attributes", {})
    component, instance = attributes.get("component"), attributes.get("instanceName")
    if component not in COMPONENTS.values() or not instance:
        return None
    for offer in item.get("terms", {}).get("OnDemand", {}).values():
        for dim in offer.get("priceDimensions", {}).values():
            usd = dim.get("pricePerUnit", {}).get("USD")
            if dim.get("unit") == "Hrs" and usd is not None:
                return f"{component}:{instance}", float(usd)
    return None


def _pages(client: Any, filters: list[dict[str, str]]) -> Iterator[dict[str, Any]]:
    """GetProducts' pages, followed by botocore's paginator: it stops at the last page and
    raises PaginationError on a NextToken the service repeats; MAX_PAGES bounds the rest."""
    pages = client.get_paginator("get_products").paginate(
        ServiceCode="AmazonSageMaker",
        Filters=filters,
        FormatVersion="aws_v1",
        PaginationConfig={"PageSize": 100},
    )
    return itertools.islice(pages, MAX_PAGES)


def fetch(region: str, client: Any, today: datetime.date | None = None) -> PriceTable:
    """One page set per component, filtered server-side to this region's instances."""
    hourly: dict[str, float] = {}
    for component in COMPONENTS.values():
        filters = [
            {"Type": "TERM_MATCH", "Field": "regionCode", "Value": region},
            {"Type": "TERM_MATCH", "Field": "component", "Value": component},
        ]
        for page in _pages(client, filters):
            for text in page.get("PriceList", []):
                found = on_demand_hourly(json.loads(text))
                if found is not None:
                    hourly[found[0]] = found[1]
    return PriceTable(region, today or datetime.date.today(), hourly)


def pricing_client() -> Any:
    from ssm_rules import aws_clients

    return aws_clients.client("pricing", PRICING_API_REGION)


def load(
    region: str,
    refresh: bool,
    client: Callable[[], Any] = pricing_client,
    today: datetime.date | None = None,
) -> Prices:
    """The cached table of ``region``; when ``refresh`` and it is missing or a week old, fetched
    again. A failed refresh keeps a stale table (its date is shown) rather than no prices."""
    today = today or datetime.date.today()
    cached = read_cache(region)
    fresh = cached is not None and today - cached.fetched < REFRESH_AFTER
    if fresh or not refresh:
        if cached is None:
            return Prices(None, f"no cached prices for {region} ({cache_file(region)})")
        return Prices(cached)
    try:
        table = fetch(region, client(), today)
    except Exception as e:  # noqa: BLE001 — no credentials, no network, no permission: no dollars
        reason = f"the AWS Price List API could not be read ({type(e).__name__}: {e})"
        return Prices(cached, "" if cached else reason)
    if not table.hourly:
        return Prices(cached, "" if cached else f"the AWS Price List has no prices for {region}")
    try:
        write_cache(table)
    except OSError as e:
        log.warning(f"could not cache the SageMaker prices in {cache_file(region)}: {e}")
    return Prices(table)
