"""The AWS Price List API's GetProducts, served by the moto server (moto has no pricing).

A small, faithful responder: JSON 1.1 (``X-Amz-Target: AWSPriceListService.GetProducts``),
``ServiceCode`` and ``Filters`` (TERM_MATCH on product attributes, case-insensitive as AWS
matches them), ``MaxResults`` pages with an opaque ``NextToken``, and each ``PriceList`` item
a JSON *string* in the documented shape (``product.attributes``, ``terms.OnDemand.<offer>.
priceDimensions.<dim>.pricePerUnit.USD`` per ``unit`` "Hrs"). The products are a few real
us-east-1 SageMaker list prices, plus products the client must leave out (another region,
the Hosting component).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

# (regionCode, location, component, instanceName, USD per hour)
PRODUCTS = (
    ("us-east-1", "US East (N. Virginia)", "Training", "ml.m5.large", "0.1150000000"),
    ("us-east-1", "US East (N. Virginia)", "Training", "ml.m5.xlarge", "0.2300000000"),
    ("us-east-1", "US East (N. Virginia)", "Training", "ml.c5.xlarge", "0.2040000000"),
    ("us-east-1", "US East (N. Virginia)", "Processing", "ml.m5.large", "0.1150000000"),
    ("us-east-1", "US East (N. Virginia)", "Processing", "ml.m5.xlarge", "0.2300000000"),
    ("us-east-1", "US East (N. Virginia)", "Hosting", "ml.m5.large", "0.1150000000"),
    ("eu-west-1", "EU (Ireland)", "Training", "ml.m5.large", "0.1280000000"),
)
USAGE = {"Training": "Train", "Processing": "Processing", "Hosting": "Host"}
REGION_PREFIX = {"us-east-1": "USE1", "eu-west-1": "EU"}


def product(region: str, location: str, component: str, instance: str, usd: str) -> dict:
    sku = f"{region}-{component}-{instance}".upper().replace(".", "")
    usage = f"{REGION_PREFIX[region]}-{USAGE[component]}:{instance}"
    return {
        "product": {
            "productFamily": "ML Instance",
            "attributes": {
                "regionCode": region,
                "servicecode": "AmazonSageMaker",
                "usagetype": usage,
                "locationType": "AWS Region",
                "location": location,
                "servicename": "Amazon SageMaker",
                "instanceName": instance,
                "operation": "RunInstance",
                "component": component,
                "instanceType": f"{instance}-{component}",
            },
            "sku": sku,
        },
        "serviceCode": "AmazonSageMaker",
        "terms": {
            "OnDemand": {
                f"{sku}.JRTCKXETXF": {
                    "priceDimensions": {
                        f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                            "unit": "Hrs",
                            "endRange": "Inf",
                            "description": f"${float(usd):.3f} per Hour for {usage}",
                            "appliesTo": [],
                            "rateCode": f"{sku}.JRTCKXETXF.6YS6EN2CT7",
                            "beginRange": "0",
                            "pricePerUnit": {"USD": usd},
                        }
                    },
                    "sku": sku,
                    "effectiveDate": "2026-11-01T00:00:00Z",
                    "offerTermCode": "JRTCKXETXF",
                    "termAttributes": {},
                }
            }
        },
        "version": "20261101000000",
        "publicationDate": "2026-11-01T00:00:00Z",
    }


class PriceListResponder:
    """``page_size`` caps MaxResults, so that a test can make the client follow NextToken;
    ``stuck_token`` makes every page point at the first one again (a service bug)."""

    def __init__(self, page_size: int = 100) -> None:
        self.page_size = page_size
        self.stuck_token = False
        self.products = [product(*p) for p in PRODUCTS]

    def get_products(self, request: dict[str, Any]) -> dict[str, Any]:
        if request.get("ServiceCode") != "AmazonSageMaker":
            return {"FormatVersion": "aws_v1", "PriceList": []}
        matching = [p for p in self.products if _matches(p, request.get("Filters", []))]
        start = int(request.get("NextToken") or 0)
        size = min(int(request.get("MaxResults") or 100), self.page_size)
        reply: dict[str, Any] = {
            "FormatVersion": request.get("FormatVersion", "aws_v1"),
            "PriceList": [json.dumps(p) for p in matching[start : start + size]],
        }
        if start + size < len(matching):
            reply["NextToken"] = str(start + size)
        if self.stuck_token:
            reply["NextToken"] = "0"
        return reply

    def __call__(self, operation: str, body: bytes, start_response: Callable[..., Any]) -> list:
        if operation != "GetProducts":
            status, reply = "400 Bad Request", {"__type": "InvalidParameterException"}
        else:
            status, reply = "200 OK", self.get_products(json.loads(body or b"{}"))
        start_response(status, [("Content-Type", "application/x-amz-json-1.1")])
        return [json.dumps(reply).encode()]


def _matches(item: dict[str, Any], filters: list[dict[str, str]]) -> bool:
    attributes = {k.lower(): v for k, v in item["product"]["attributes"].items()}
    attributes["productfamily"] = item["product"]["productFamily"]
    return all(
        f.get("Type") == "TERM_MATCH"
        and attributes.get(f["Field"].lower(), "").lower() == f["Value"].lower()
        for f in filters
    )
