"""Service plugins: how a service joins the all-in-one platform without editing a central list.

A service package ``services/<name>/`` (or a top-level package such as ``edge``) that has a ``plugin`` module
exposing ``PLUGIN: ServicePlugin`` is found by :func:`discover` and started by ``marquee up`` in ``order``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING

from services.common.service import Service

if TYPE_CHECKING:
    from services.platform.runtime import Runtime

# Packages whose sub-packages may carry plugins, besides top-level packages that are plugins themselves.
PLUGIN_PARENTS = ("services",)
TOP_LEVEL_PLUGINS = ("edge",)


@dataclass
class Endpoint:
    """Something a running service offers: a gRPC address, an HTTP URL to open, a metrics URL."""

    label: str
    address: str
    kind: str = "grpc"  # grpc | http | info (something to tell the user, such as the demo sign-in)


@dataclass
class RunningService:
    """A started service: its endpoints and how to stop it (gracefully)."""

    name: str
    endpoints: list[Endpoint]
    stop: Callable[[], Awaitable[None]]
    grpc_address: str | None = None
    health_services: tuple[str, ...] = ()
    drain: Callable[[], Awaitable[None]] | None = None  # begins the graceful stop (health NOT_SERVING) early


def running(service: Service, host: str, endpoints: list[Endpoint]) -> RunningService:
    """The platform's record of a started :class:`Service` listening on ``host``."""
    grpc_address = f"{host}:{service.grpc_port}" if service.grpc is not None else None
    return RunningService(
        name=service.name,
        endpoints=endpoints,
        stop=service.stop,
        grpc_address=grpc_address,
        health_services=service.health_services,
        drain=service.begin_drain,
    )


@dataclass(frozen=True)
class ServicePlugin:
    """A service the platform can run. ``start`` gets the shared runtime and returns the running service."""

    name: str
    start: Callable[[Runtime], Awaitable[RunningService]]
    order: int = 100  # lower starts first (and stops last)
    default_port: int = 0
    requires: tuple[str, ...] = field(default_factory=tuple)


def _plugin_of(module_name: str) -> ServicePlugin | None:
    try:
        module: ModuleType = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise
    plugin = getattr(module, "PLUGIN", None)
    if plugin is None:
        return None
    if not isinstance(plugin, ServicePlugin):
        raise TypeError(f"{module_name}.PLUGIN is not a ServicePlugin")
    return plugin


def discover(
    parents: Iterable[str] = PLUGIN_PARENTS, top_level: Iterable[str] = TOP_LEVEL_PLUGINS
) -> list[ServicePlugin]:
    """Every plugin found, sorted by start order then name; duplicate names are an error."""
    found: dict[str, ServicePlugin] = {}
    candidates: list[str] = []
    for parent in parents:
        package = importlib.import_module(parent)
        for info in pkgutil.iter_modules(package.__path__):
            if info.ispkg:
                candidates.append(f"{parent}.{info.name}.plugin")
    candidates += [f"{name}.plugin" for name in top_level]
    for module_name in candidates:
        plugin = _plugin_of(module_name)
        if plugin is None:
            continue
        if plugin.name in found:
            raise ValueError(f"two plugins are named {plugin.name!r}")
        found[plugin.name] = plugin
    return sorted(found.values(), key=lambda p: (p.order, p.name))
