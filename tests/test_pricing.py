"""Prices from the AWS Price List API (served by the moto server): parsed, cached with their
date, refreshed weekly; without credentials or network, no dollars and the reason why."""

from __future__ import annotations

import datetime
import json

import pytest

from ssm_rules import pricing
from ssm_rules.backends.base import JobType
from tests.moto_pricing import product

TODAY = datetime.date(2026, 12, 2)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "ssm_rules"


def test_on_demand_hourly_reads_the_documented_price_list_shape():
    item = product("us-east-1", "US East (N. Virginia)", "Training", "ml.m5.large", "0.115")
    assert pricing.on_demand_hourly(item) == ("Training:ml.m5.large", 0.115)
    hosting = product("us-east-1", "US East (N. Virginia)", "Hosting", "ml.m5.large", "0.115")
    assert pricing.on_demand_hourly(hosting) is None  # endpoints are not what jobs pay


def test_refresh_fetches_one_page_set_per_job_type_and_caches_it(
    cache, aws, api_calls, monkeypatch
):
    # the client must follow NextToken (monkeypatch: the responder lives all session)
    monkeypatch.setattr(aws.pricing, "page_size", 2)
    prices = pricing.load("us-east-1", refresh=True, today=TODAY)
    assert prices.unavailable == ""
    assert prices.price(JobType.TRAINING, "ml.m5.xlarge") == 0.23
    assert prices.price(JobType.PROCESSING, "ml.m5.large") == 0.115
    assert prices.price(JobType.PROCESSING, "ml.c5.xlarge") is None  # only a training price
    assert prices.table is not None and prices.table.region == "us-east-1"
    # Training: 3 products on 2 pages; Processing: 2 products on 1 page
    assert api_calls.count("pricing", "GetProducts") == 3
    bodies = [json.loads(c.body) for c in api_calls.calls if c.operation == "GetProducts"]
    assert {b["ServiceCode"] for b in bodies} == {"AmazonSageMaker"}
    assert all(
        {"Type": "TERM_MATCH", "Field": "regionCode", "Value": "us-east-1"} in b["Filters"]
        for b in bodies
    )
    assert all(c.headers["host"].startswith("127.0.0.1") for c in api_calls.calls)
    saved = json.loads((cache / "sagemaker-prices-us-east-1.json").read_text())
    assert saved["fetched"] == "2026-12-02" and saved["hourly"]["Training:ml.m5.large"] == 0.115

    api_calls.clear()  # within the week: the cache answers, no call
    again = pricing.load("us-east-1", refresh=True, today=TODAY + datetime.timedelta(days=6))
    assert again.table == prices.table
    assert api_calls.count("pricing") == 0

    later = TODAY + datetime.timedelta(days=7)  # a week old: fetched again, dated anew
    refreshed = pricing.load("us-east-1", refresh=True, today=later)
    assert refreshed.table is not None and refreshed.table.fetched == later
    assert api_calls.count("pricing", "GetProducts") == 3


def test_a_next_token_that_comes_back_ends_the_fetch(cache, aws, api_calls, monkeypatch):
    """botocore's paginator refuses a repeated NextToken: two calls, then no prices (said why),
    never a loop over the same page."""
    monkeypatch.setattr(aws.pricing, "stuck_token", True)  # the responder lives all session
    prices = pricing.load("us-east-1", refresh=True, today=TODAY)
    assert prices.table is None and "PaginationError" in prices.unavailable
    assert api_calls.count("pricing", "GetProducts") == 2


def test_without_refresh_only_the_cache_is_read(cache, aws, api_calls):
    """The local backend calls no AWS API: a missing cache means instance-hours."""
    prices = pricing.load("us-east-1", refresh=False, today=TODAY)
    assert prices.table is None and "no cached prices for us-east-1" in prices.unavailable
    assert api_calls.count("pricing") == 0


def test_no_credentials_means_no_dollars_and_says_why(cache, no_credentials, monkeypatch):
    monkeypatch.setenv("SSM_AWS_MAX_ATTEMPTS", "1")
    prices = pricing.load("us-east-1", refresh=True, today=TODAY)
    assert prices.table is None
    assert "could not be read" in prices.unavailable and "NoCredentialsError" in prices.unavailable
    assert not (cache / "sagemaker-prices-us-east-1.json").exists()


def test_a_failed_refresh_keeps_the_stale_table(cache):
    stale = pricing.PriceTable("us-east-1", TODAY, {"Training:ml.m5.large": 0.115})
    pricing.write_cache(stale)

    def broken():
        raise ConnectionError("no network")

    prices = pricing.load("us-east-1", refresh=True, client=broken, today=TODAY.replace(year=2027))
    assert prices.table == stale and prices.unavailable == ""
