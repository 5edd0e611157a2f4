#!/usr/bin/env python3
"""Independent MCP client check for AgentVoiceBox, using the official Python SDK (`mcp` 2.3).

One transport per invocation:

  mcp_client_check.py --transport streamable-http --url http://127.0.0.1:8080/mcp
  mcp_client_check.py --transport sse --url http://127.0.0.1:8080/api/v2/mcp/sse
  mcp_client_check.py --transport stdio --command ./target/debug/avb -- mcp --transport stdio

For stdio, everything after `--` is passed to the command as its arguments, and the
whole current environment (AVB_DATA_DIR, AVB_TEMPORAL_ADDRESS, ...) is passed through
to the child (the SDK would otherwise pass only HOME/PATH/SHELL/...). The server's
stderr goes to this script's stderr.

Checks: initialize; tools/list is exactly the ten tools (status, voices, speech, echo, job and
billing tools; a superset with --allow-extra); get_server_status says "AgentVoiceBox Platform is
ONLINE"; generate_speech returns an audio/wav block (24 kHz mono, 0.8-6 s) plus structuredContent
with job_id and status "completed"; generate_speech with an unknown voice_id is an
isError result naming "voice_id" and "af_heart"; get_balance returns structuredContent with an
integer "available".

On success prints one JSON line on stdout:
  {"transport": ..., "tools": [...], "duration_secs": ..., "ok": true}
On failure prints "FAIL: ..." on stderr (and {"ok": false, ...} on stdout) and exits 1.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import io
import json
import os
import sys
import time
import wave
from typing import Any

import anyio
import mcp_types as types
from mcp.client import Client
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters

EXPECTED_TOOLS = {
    "get_server_status", "list_voices", "generate_speech", "durable_echo",
    "get_job", "list_jobs", "cancel_job",
    "get_balance", "get_usage", "grant_credits",
    "create_mcp_server", "get_mcp_server", "list_mcp_servers", "delete_mcp_server",
    "smart_home_control", "call_service", "list_devices", "get_device_state",
    "approve_job", "reject_job",
    "search_tools", "batch_execute",
}
ONLINE_TEXT = "AgentVoiceBox Platform is ONLINE"
SPEECH_TEXT = "Hello from the Python client."


class CheckFailed(Exception):
    pass


def check(cond: bool, msg: str) -> None:
    if not cond:
        raise CheckFailed(msg)


def log(msg: str) -> None:
    print(f"[mcp_client_check] {msg}", file=sys.stderr, flush=True)


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


def describe(result: types.CallToolResult) -> str:
    """Compact dump of a tool result for failure messages (audio data elided)."""
    dumped = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    for block in dumped.get("content", []):
        if isinstance(block, dict) and isinstance(block.get("data"), str) and len(block["data"]) > 80:
            block["data"] = f"<{len(block['data'])} base64 chars>"
    return json.dumps(dumped)[:2000]


def wav_facts(data: bytes) -> tuple[int, int, float]:
    check(data[:4] == b"RIFF" and data[8:12] == b"WAVE", f"audio is not RIFF/WAVE (starts {data[:12]!r})")
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            rate, channels, frames = w.getframerate(), w.getnchannels(), w.getnframes()
    except (wave.Error, EOFError) as e:
        raise CheckFailed(f"stdlib wave cannot parse the audio: {e}") from e
    check(rate > 0, "WAV sample rate is 0")
    return rate, channels, frames / rate


def make_client(args: argparse.Namespace) -> Client:
    if args.transport == "streamable-http":
        server: Any = args.url
    elif args.transport == "sse":
        server = sse_client(args.url, timeout=30.0, sse_read_timeout=args.timeout)
    else:
        server = StdioServerParameters(command=args.command, args=args.server_args, env=dict(os.environ))
    return Client(
        server,
        mode=args.mode,
        read_timeout_seconds=args.timeout,
        client_info=types.Implementation(name="avb-python-client-check", version="1"),
    )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    async with make_client(args) as client:
        info = client.server_info
        log(
            f"connected: protocol {client.protocol_version}, "
            f"server {info.name if info else None} {info.version if info else ''}"
        )

        # tools/list (walk pages, bypass the client cache so we see the wire)
        tools: list[types.Tool] = []
        cursor: str | None = None
        while True:
            page = await client.list_tools(cursor=cursor, cache_mode="bypass")
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        names = sorted(t.name for t in tools)
        for t in tools:
            first_line = (t.description or "").strip().splitlines()[0:1]
            log(f"tool {t.name}: {first_line[0] if first_line else ''}")
        missing = EXPECTED_TOOLS - set(names)
        extra = set(names) - EXPECTED_TOOLS
        check(not missing, f"tools/list is missing {sorted(missing)} (got {names})")
        check(not extra or args.allow_extra, f"tools/list has unexpected tools {sorted(extra)} (use --allow-extra)")

        # get_server_status
        status = await client.call_tool("get_server_status", {})
        check(not status.is_error, f"get_server_status returned isError: {describe(status)}")
        check(ONLINE_TEXT in text_of(status), f"get_server_status text lacks {ONLINE_TEXT!r}: {describe(status)}")
        log("get_server_status: ONLINE")

        # generate_speech
        t0 = time.monotonic()
        speech = await client.call_tool("generate_speech", {"text": SPEECH_TEXT})
        elapsed = time.monotonic() - t0
        check(not speech.is_error, f"generate_speech returned isError: {describe(speech)}")
        audio = [c for c in speech.content if isinstance(c, types.AudioContent)]
        check(len(audio) >= 1, f"generate_speech has no audio content block: {describe(speech)}")
        block = audio[0]
        check(block.mime_type == "audio/wav", f"audio mimeType is {block.mime_type!r}, want 'audio/wav'")
        try:
            wav_bytes = base64.b64decode(block.data, validate=True)
        except (binascii.Error, ValueError) as e:
            raise CheckFailed(f"audio data is not valid base64: {e}") from e
        rate, channels, secs = wav_facts(wav_bytes)
        check(rate == 24000, f"WAV sample rate {rate}, want 24000")
        check(channels == 1, f"WAV has {channels} channels, want 1")
        check(0.8 <= secs <= 6.0, f"WAV duration {secs:.3f}s outside [0.8, 6.0]")
        sc = speech.structured_content
        check(isinstance(sc, dict), f"generate_speech structuredContent is not an object: {sc!r}")
        check(bool(sc.get("job_id")), f"structuredContent has no job_id: {sc}")
        check(sc.get("status") == "completed", f"structuredContent status is {sc.get('status')!r}, want 'completed'")
        log(
            f"generate_speech: job {sc['job_id']} completed, {len(wav_bytes)} bytes, "
            f"{rate} Hz x{channels}, {secs:.2f}s audio, call took {elapsed:.2f}s"
        )

        # generate_speech with an unknown voice
        bad = await client.call_tool("generate_speech", {"text": "hi", "voice_id": "af_nope"})
        bad_text = text_of(bad)
        check(bad.is_error, f"generate_speech with voice_id af_nope did not return isError: {describe(bad)}")
        check("voice_id" in bad_text, f"error text does not mention 'voice_id': {bad_text!r}")
        check("af_heart" in bad_text, f"error text does not mention 'af_heart': {bad_text!r}")
        log(f"bad voice rejected: {bad_text.splitlines()[0] if bad_text else ''}")

        # get_balance (structured output, checked by the SDK against the tool's outputSchema)
        balance = await client.call_tool("get_balance", {})
        check(not balance.is_error, f"get_balance returned isError: {describe(balance)}")
        sc = balance.structured_content
        check(isinstance(sc, dict), f"get_balance structuredContent is not an object: {sc!r}")
        check(isinstance(sc.get("available"), int), f"get_balance has no integer 'available': {sc}")
        log(f"get_balance: tenant {sc.get('tenant')}, {sc['available']} available, {sc.get('held')} held")

        return {"transport": args.transport, "tools": names, "duration_secs": round(secs, 3), "ok": True}


def parse_args(argv: list[str]) -> argparse.Namespace:
    server_args: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, server_args = argv[:i], argv[i + 1 :]
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="For --transport stdio, put the server's arguments after `--`.",
    )
    p.add_argument("--transport", required=True, choices=["streamable-http", "sse", "stdio"])
    p.add_argument("--url", help="endpoint URL (streamable-http: .../mcp; sse: .../api/v2/mcp/sse)")
    p.add_argument("--command", help="server executable for stdio (arguments after `--`)")
    p.add_argument(
        "--arg",
        action="append",
        default=[],
        help="one stdio server argument (repeatable; alternative to `--`; write --arg=--flag for dashed values)",
    )
    p.add_argument("--allow-extra", action="store_true", help="accept tools beyond the expected ones")
    p.add_argument(
        "--mode",
        default="auto",
        choices=["auto", "legacy"],
        help="SDK connect mode: auto (server/discover probe, falls back to initialize) or legacy (initialize only)",
    )
    p.add_argument("--timeout", type=float, default=120.0, help="overall timeout in seconds (default 120)")
    args = p.parse_args(argv)
    args.server_args = args.arg + server_args
    if args.transport == "stdio":
        if not args.command:
            p.error("--transport stdio needs --command")
    elif not args.url:
        p.error(f"--transport {args.transport} needs --url")
    return args


def main() -> int:
    args = parse_args(sys.argv[1:])

    async def guarded() -> dict[str, Any]:
        with anyio.fail_after(args.timeout):
            return await run(args)

    try:
        summary = anyio.run(guarded)
    except BaseException as e:  # noqa: BLE001 - report anything (incl. ExceptionGroup) as a failure
        if isinstance(e, KeyboardInterrupt):
            raise
        msg = flatten(e)
        if isinstance(e, TimeoutError):
            msg = f"timed out after {args.timeout:g}s"
        print(f"FAIL ({args.transport}): {msg}", file=sys.stderr, flush=True)
        print(json.dumps({"transport": args.transport, "ok": False, "error": msg}), flush=True)
        return 1
    print(json.dumps(summary), flush=True)
    return 0


def flatten(e: BaseException) -> str:
    """Readable message for an exception, unwrapping (nested) exception groups."""
    if isinstance(e, BaseExceptionGroup):
        return "; ".join(flatten(x) for x in e.exceptions)
    if isinstance(e, CheckFailed):
        return str(e)
    return f"{type(e).__name__}: {e}"


if __name__ == "__main__":
    sys.exit(main())
