"""The container image's runtime (tests/image/image.py): built once per session from the wheels, in the root
filesystem scripts/image-rootfs.sh made (./dev test builds it before pytest)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.image.image import Image, ImageError, Wheels, build_wheels, image_rootfs, install, namespaces_unavailable


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Wheels:
    return build_wheels(tmp_path_factory.mktemp("wheels"))


@pytest.fixture(scope="session")
def image(wheels: Wheels, tmp_path_factory: pytest.TempPathFactory) -> Image:
    reason = namespaces_unavailable()
    if reason is not None:
        pytest.skip(f"the image's commands cannot run here: {reason}")
    try:
        rootfs = image_rootfs()
    except ImageError as exc:
        pytest.fail(f"the image's root filesystem is not built: {exc}")
    return install(rootfs, wheels, tmp_path_factory.mktemp("image"))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data directory volume the image's user owns."""
    volume = tmp_path / "data"
    volume.mkdir()
    os.chown(volume, 10001, 10001)
    return volume
