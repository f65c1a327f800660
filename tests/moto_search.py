"""SageMaker ``Search`` (Resource TrainingJob) over moto's jobs, as AWS documents it.

moto 5.2's Search stops at the first ``Tags.`` filter (every filter after it is ignored),
treats every operator but Contains/NotEquals as Equals, knows no ``Or``, and ignores SortBy,
MaxResults and NextToken. The API reference (Search, SearchExpression, Filter) says:

- a Filter is ``Name`` (a property path, ``Tags.<key>``), ``Operator`` (default Equals),
  ``Value`` (at most 1024 characters); ``In``: the value is one of the comma-delimited
  strings in Value (text properties only); ``Contains``: the value contains Value, once per
  expression; GreaterThan... are not supported for text properties; timestamps compare
  with ``YYYY-mm-ddTHH:MM:SS``;
- a SearchExpression holds Filters, NestedFilters and SubExpressions (at most 20 elements)
  joined by ``Operator`` And (default) or Or;
- MaxResults 1..100, NextToken to page on; SortBy / SortOrder (Descending by default).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

DEFAULT_MAX_RESULTS = 10
MAX_ELEMENTS = 20
MAX_VALUE = 1024
ORDERED = {"GreaterThan", "GreaterThanOrEqualTo", "LessThan", "LessThanOrEqualTo"}


class SearchValidationError(ValueError):
    pass


def _value(record: dict[str, Any], name: str) -> Any:
    if name.startswith("Tags."):
        key = name[len("Tags.") :]
        return next((t["Value"] for t in record.get("Tags") or [] if t["Key"] == key), None)
    value: Any = record
    for part in name.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _as_time(value: Any) -> datetime.datetime:
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value


def _filter(record: dict[str, Any], f: dict[str, Any]) -> bool:
    op, wanted = f.get("Operator", "Equals"), f.get("Value")
    if wanted is not None and len(wanted) > MAX_VALUE:
        raise SearchValidationError(f"Filter Value of {len(wanted)} characters (max {MAX_VALUE})")
    actual = _value(record, f["Name"])
    if op == "Exists":
        return actual is not None
    if op == "NotExists":
        return actual is None
    if actual is None:
        return op == "NotEquals"
    if isinstance(actual, datetime.datetime):
        actual, wanted = _as_time(actual), _as_time(wanted)
    elif isinstance(actual, (int, float)) and not isinstance(actual, bool):
        wanted = float(wanted)
    elif op in ORDERED:
        raise SearchValidationError(f"{op} is not supported for the text property {f['Name']}")
    if op == "Equals":
        return bool(actual == wanted)
    if op == "NotEquals":
        return bool(actual != wanted)
    if op == "In":
        return isinstance(actual, str) and actual in wanted.split(",")
    if op == "Contains":
        return isinstance(actual, str) and wanted in actual
    return {
        "GreaterThan": actual > wanted,
        "GreaterThanOrEqualTo": actual >= wanted,
        "LessThan": actual < wanted,
        "LessThanOrEqualTo": actual <= wanted,
    }[op]


def _count_contains(expression: dict[str, Any]) -> int:
    own = sum(f.get("Operator") == "Contains" for f in expression.get("Filters") or [])
    return own + sum(_count_contains(e) for e in expression.get("SubExpressions") or [])


def matches(record: dict[str, Any], expression: dict[str, Any] | None) -> bool:
    if not expression:
        return True
    filters = expression.get("Filters") or []
    subs = expression.get("SubExpressions") or []
    nested = expression.get("NestedFilters") or []
    if len(filters) + len(subs) + len(nested) > MAX_ELEMENTS:
        raise SearchValidationError(f"a SearchExpression holds at most {MAX_ELEMENTS} elements")
    results = [_filter(record, f) for f in filters] + [matches(record, e) for e in subs]
    for n in nested:  # one element of the list property satisfies all its filters
        items = _value(record, n["NestedPropertyName"]) or []
        results.append(any(all(_filter(i, f) for f in n["Filters"]) for i in items))
    return any(results) if expression.get("Operator") == "Or" else all(results)


def search(
    records: list[dict[str, Any]],
    expression: dict[str, Any] | None,
    sort_by: str | None,
    sort_order: str | None,
    max_results: int | None,
    next_token: str | None,
) -> dict[str, Any]:
    size = DEFAULT_MAX_RESULTS if max_results is None else int(max_results)
    if not 1 <= size <= 100:
        raise SearchValidationError(f"MaxResults {size} is not in 1..100")
    if expression and _count_contains(expression) > 1:
        raise SearchValidationError("'CONTAINS' operator usage limit of 1 exceeded.")
    found = [r for r in records if matches(r, expression)]
    key = sort_by or "CreationTime"
    found.sort(
        key=lambda r: _value(r, key) or 0, reverse=(sort_order or "Descending") != "Ascending"
    )
    start = int(next_token or 0)
    page = found[start : start + size]
    reply: dict[str, Any] = {"Results": [{"TrainingJob": r} for r in page]}
    if start + size < len(found):
        reply["NextToken"] = str(start + size)
    return reply


def install(set_attr: Callable[[Any, str, Any], None], refresh: Callable[[Any], None]) -> None:
    """Replace moto's Search of training jobs (other resources keep moto's); ``refresh(backend)``
    runs first (the hook brings its jobs' status up to date)."""
    from moto.sagemaker import models, responses
    from moto.sagemaker.exceptions import AWSValidationException

    original = models.SageMakerModelBackend.search

    def backend_search(self: Any, resource: Any = None, search_expression: Any = None, **kw: Any):
        if resource != "TrainingJob":
            return original(self, resource=resource, search_expression=search_expression)
        refresh(self)
        records = [job.gen_response_object() for job in self.training_jobs.values()]
        try:
            return search(records, search_expression, **kw)
        except SearchValidationError as e:
            raise AWSValidationException(str(e)) from e

    def response_search(self: Any) -> Any:
        from moto.core.responses import ActionResult

        return ActionResult(
            self.sagemaker_backend.search(
                resource=self._get_param("Resource"),
                search_expression=self._get_param("SearchExpression"),
                sort_by=self._get_param("SortBy"),
                sort_order=self._get_param("SortOrder"),
                max_results=self._get_param("MaxResults"),
                next_token=self._get_param("NextToken"),
            )
        )

    set_attr(models.SageMakerModelBackend, "search", backend_search)
    set_attr(responses.SageMakerResponse, "search", response_search)


def main() -> None:
    """``python -m tests.moto_search -H 127.0.0.1 -p PORT``: moto's server with this Search."""
    from moto.server import main as moto_main

    install(setattr, lambda backend: None)
    moto_main()


if __name__ == "__main__":
    main()
