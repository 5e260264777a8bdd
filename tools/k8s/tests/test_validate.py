"""Tests of the validation: strict Kubernetes schemas, custom schemas, unknown kinds."""

from __future__ import annotations

from typing import Any

from tools.k8s.validate import validate

SERVICE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "api"},
    "spec": {"selector": {"app": "api"}, "ports": [{"port": 8000}]},
}
WIDGET_SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"size": {"type": "integer"}},
        }
    },
}


def _widget(size: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"size": size},
    }


def test_valid_resources_pass_and_are_counted() -> None:
    report = validate([SERVICE, _widget(3)], {"example.com_v1_Widget": WIDGET_SCHEMA})
    assert report.errors == []
    assert report.total == 2
    assert "1 Widget (custom schema)" in report.summary()


def test_unknown_field_and_wrong_type_fail_strictly() -> None:
    typo = {**SERVICE, "spec": {**SERVICE["spec"], "selecter": {}}}
    wrong = {**SERVICE, "spec": {"ports": [{"port": "eighty"}]}}
    report = validate([typo, wrong], {})
    assert len(report.errors) == 2
    assert "selecter" in report.errors[0]
    assert "spec.ports.0.port" in report.errors[1]


def test_custom_schema_errors_and_kinds_without_a_schema() -> None:
    report = validate([_widget("big")], {"example.com_v1_Widget": WIDGET_SCHEMA})
    assert report.errors == ["Widget/w: spec.size: 'big' is not of type 'integer'"]
    report = validate([_widget(1)], {})
    assert report.errors == ["Widget/w: no schema for example.com/v1 Widget"]
