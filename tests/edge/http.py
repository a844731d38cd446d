"""A minimal HTTP/1.1 client over asyncio streams: the tests need exact control of what goes on the wire
(hostile heads, many concurrent connections) and the raw bytes that come back."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


async def read_reply(reader: asyncio.StreamReader, *, head_only: bool = False) -> Reply:
    head = await reader.readuntil(b"\r\n\r\n")
    status, headers = _parse_head(head[:-4])
    if head_only or status in (204, 304):
        return Reply(status, headers, b"")
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    else:
        body = await reader.read()
    return Reply(status, headers, body)


async def request(
    port: int,
    path: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
    timeout: float = 60.0,
) -> Reply:
    """One request on a fresh connection (``raw`` replaces the whole request head)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    try:
        if raw is None:
            lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
            lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
            raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        writer.write(raw)
        await writer.drain()
        return await asyncio.wait_for(read_reply(reader, head_only=method == "HEAD"), timeout)
    finally:
        writer.close()


async def get(port: int, path: str, **headers: str) -> Reply:
    return await request(port, path, headers={k.replace("_", "-"): v for k, v in headers.items()})
