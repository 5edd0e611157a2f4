#!/usr/bin/env python3
"""One IDE-style stdio session with the official Python MCP SDK: spawns `avb mcp --transport
stdio` (its arguments after `--`) with this process's environment, lists the tools, waits
`--hold` seconds (so another session can come and go meanwhile), then calls generate_speech.

Prints one JSON line: {"ok", "tools", "first_list_secs", "audio_bytes", "job_id", "stderr_hint"}.
Exits 1 on failure with the reason on stderr.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time

import anyio
import mcp_types as types
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters


async def run(args: argparse.Namespace) -> dict:
    server = StdioServerParameters(command=args.command, args=args.server_args, env=dict(os.environ))
    started = time.monotonic()
    async with Client(server, read_timeout_seconds=240) as client:
        tools = await client.list_tools(cache_mode="bypass")
        first_list = time.monotonic() - started
        await anyio.sleep(args.hold)
        speech = await client.call_tool("generate_speech", {"text": args.text})
        if speech.is_error:
            raise RuntimeError(f"generate_speech failed: {speech.model_dump_json()[:500]}")
        audio = [c for c in speech.content if isinstance(c, types.AudioContent)]
        if not audio:
            raise RuntimeError(f"no audio: {speech.model_dump_json()[:500]}")
        structured = speech.structured_content or {}
        return {
            "ok": True,
            "tools": len(tools.tools),
            "first_list_secs": round(first_list, 3),
            "audio_bytes": len(base64.b64decode(audio[0].data)),
            "job_id": structured.get("job_id"),
        }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--command", required=True)
    p.add_argument("--hold", type=float, default=0.0)
    p.add_argument("--text", default="Spoken for an editor over standard input and output.")
    p.add_argument("server_args", nargs="*")
    args = p.parse_args()
    try:
        print(json.dumps(anyio.run(run, args)), flush=True)
    except Exception as e:  # noqa: BLE001 - the test reads the reason
        print(f"stdio session failed: {e!r}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
