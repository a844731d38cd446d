"""Structural rules of the contracts that buf lint does not check, and the generated code's freshness."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FileDescriptor

from marquee.v1 import (
    accounts_pb2,
    catalog_pb2,
    common_pb2,
    content_keys_pb2,
    download_pb2,
    encoding_pb2,
    license_pb2,
    playback_pb2,
    recommendations_pb2,
    steering_pb2,
)

ROOT = Path(__file__).resolve().parents[2]
FILES: list[FileDescriptor] = [
    m.DESCRIPTOR
    for m in (
        accounts_pb2,
        catalog_pb2,
        common_pb2,
        content_keys_pb2,
        download_pb2,
        encoding_pb2,
        license_pb2,
        playback_pb2,
        recommendations_pb2,
        steering_pb2,
    )
]
SERVICES = [s for f in FILES for s in f.services_by_name.values()]


def _nested_enums(msgs: list[Descriptor]) -> list[EnumDescriptor]:
    out: list[EnumDescriptor] = []
    for m in msgs:
        out += list(m.enum_types)
        out += _nested_enums(list(m.nested_types))
    return out


def _enums() -> list[EnumDescriptor]:
    out: list[EnumDescriptor] = []
    for f in FILES:
        out += list(f.enum_types_by_name.values())
        out += _nested_enums(list(f.message_types_by_name.values()))
    return out


def test_the_services_exist() -> None:
    assert sorted(s.name for s in SERVICES) == sorted(
        [
            "AccountService",
            "CatalogService",
            "PlaybackService",
            "SteeringService",
            "RecommendationService",
            "EncodingService",
            "LicenseService",
            "ContentKeyService",
            "DownloadService",
        ]
    )


def test_every_proto_file_is_checked_here() -> None:
    assert sorted(f.name for f in FILES) == sorted(
        str(p.relative_to(ROOT / "proto")) for p in (ROOT / "proto" / "marquee" / "v1").glob("*.proto")
    )


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_list_methods_page(service: object) -> None:
    for method in service.methods:  # type: ignore[attr-defined]
        if not method.name.startswith("List"):
            continue
        req, resp = method.input_type.fields_by_name, method.output_type.fields_by_name
        if method.name in ("ListGenres", "ListBrowseRows", "ListRecommendationRows"):
            continue  # bounded, non-paged collections
        assert req["page_size"].type == req["page_size"].TYPE_INT32, method.full_name
        assert req["page_token"].type == req["page_token"].TYPE_STRING, method.full_name
        assert "next_page_token" in resp, method.full_name


def test_every_enum_starts_unspecified() -> None:
    for enum in _enums():
        zero = enum.values_by_number[0]
        assert zero.name.endswith("_UNSPECIFIED"), enum.full_name


def test_update_methods_take_a_field_mask() -> None:
    for service in SERVICES:
        for method in service.methods:
            if method.name.startswith("Update") and method.name != "UpdatePosition":
                mask = method.input_type.fields_by_name.get("update_mask")
                assert mask is not None, method.full_name
                assert mask.message_type is not None, method.full_name
                assert mask.message_type.full_name == "google.protobuf.FieldMask", method.full_name


def test_error_reasons_used_by_services_are_declared() -> None:
    declared = {v.name.removeprefix("ERROR_REASON_") for v in common_pb2.ErrorReason.DESCRIPTOR.values}
    used = set()
    for path in (ROOT / "services").rglob("*.py"):
        used |= set(re.findall(r'reason="([A-Z_]+)"', path.read_text()))
    assert used, "no reasons found: the scan is broken"
    assert used <= declared, f"undeclared ErrorReason values: {sorted(used - declared)}"


def test_generated_code_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
