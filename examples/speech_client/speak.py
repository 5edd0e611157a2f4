#!/usr/bin/env python3
"""Speak a text through AgentVoiceBox with the official MCP Python SDK and save the WAV.

  speak.py --url http://127.0.0.1:8080/mcp --text "Hello there." --out hello.wav

Connects over Streamable HTTP with an API key (`Authorization: Bearer`, from --api-key or
AVB_API_KEY), lists the tools, and calls `generate_speech` as an MCP task: the client declares
the tasks extension (`io.modelcontextprotocol/tasks`), the server answers the call at once with a
task (the task id is the job id, i.e. the Temporal workflow id), and the client polls `tasks/get`,
printing the job's status and progress, until the task is completed. The completed task carries
the same result a direct call returns: an `audio/wav` block, which is written to --out.

With --no-tasks the client does not declare the extension: the server then answers the call
directly (waiting up to its wait budget), and if the job is still running the client follows it
with the `get_job` tool instead.

Progress goes to stderr. The last line on stdout is one JSON object, either
  {"ok": true, "mode": "task"|"direct"|"get_job", "job_id", "out", "bytes", "sample_rate", "channels",
   "duration_secs", "voice_id", "polls", "elapsed_secs"}
or {"ok": false, "error": "..."}; the exit status is 0 only for the first.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
import httpx2
import mcp_types as types
from mcp import MCPError
from mcp.client import ClaimContext, Client, ClientExtension, ResultClaim
from mcp.client.streamable_http import streamable_http_client

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
TERMINAL_TASK = {"completed", "failed", "cancelled"}
TERMINAL_JOB = {"completed", "failed", "cancelled", "terminated", "timed_out"}


class ClientError(Exception):
    """A failure with a message meant for the person running the example."""


def log(msg: str) -> None:
    print(f"[speak] {msg}", file=sys.stderr, flush=True)


# --- The tasks extension (SEP-2663), built on the SDK's generic client-extension hooks -----------
#
# The SDK (mcp 2.3) has no ready-made tasks client for the 2026 protocol, but it lets a client
# extension claim a new `tools/call` result shape by its `resultType` and resolve it into the
# ordinary CallToolResult. Declaring the extension puts `io.modelcontextprotocol/tasks` into the
# client's capabilities, which is what makes the AgentVoiceBox server answer durable tools with
# a task (crates/api/src/mcp/tasks.rs).


class CreateTaskResult(types.Result):
    """`tools/call` answered with a task instead of the result (`resultType: "task"`)."""

    result_type: Literal["task"]
    task_id: str
    status: str
    status_message: str | None = None
    poll_interval_ms: int | None = None


class GetTaskParams(types.RequestParams):
    task_id: str


class GetTaskRequest(types.Request[GetTaskParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    params: GetTaskParams
    # SEP-2663: tasks/* carry the task id in the `Mcp-Name` header too (the server checks it).
    name_param = "taskId"


class TaskState(types.Result):
    """A `tasks/get` answer: the task and, by status, its `result` or `error`."""

    task_id: str
    status: str
    status_message: str | None = None
    poll_interval_ms: int | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


@dataclass
class TasksExtension(ClientExtension):
    """Follows a task to its end by polling `tasks/get`, reporting each new status message."""

    identifier = TASKS_EXTENSION
    task_id: str | None = None
    polls: int = 0
    statuses: list[str] = field(default_factory=list)

    def claims(self) -> list[ResultClaim[Any]]:
        return [ResultClaim(result_type="task", model=CreateTaskResult, resolve=self.follow)]

    def note(self, status: str, message: str | None) -> None:
        line = f"{status}: {message}" if message else status
        if not self.statuses or self.statuses[-1] != line:
            self.statuses.append(line)
            log(f"task {self.task_id} {line}")

    async def follow(self, created: CreateTaskResult, ctx: ClaimContext) -> types.CallToolResult:
        self.task_id = created.task_id
        log(f"{ctx.tool_name} became task {created.task_id}")
        self.note(created.status, created.status_message)
        interval = (created.poll_interval_ms or 500) / 1000
        while True:
            await anyio.sleep(interval)
            state = await ctx.session.send_request(
                GetTaskRequest(params=GetTaskParams(task_id=created.task_id)), TaskState
            )
            self.polls += 1
            self.note(state.status, state.status_message)
            interval = (state.poll_interval_ms or 500) / 1000
            if state.status == "completed":
                if state.result is None:
                    raise ClientError(f"task {state.task_id} completed without a result")
                return types.CallToolResult.model_validate(state.result, by_name=False)
            if state.status == "failed":
                raise ClientError(f"task {state.task_id} failed: {json.dumps(state.error)}")
            if state.status == "cancelled":
                raise ClientError(f"task {state.task_id} was cancelled: {state.status_message}")
            # "input_required" is for tools that wait for a person's approval: keep polling.


# --- The example proper ------------------------------------------------------------------------


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


def wav_bytes_of(result: types.CallToolResult) -> bytes | None:
    for block in result.content:
        if isinstance(block, types.AudioContent) and block.mime_type == "audio/wav":
            try:
                return base64.b64decode(block.data, validate=True)
            except (binascii.Error, ValueError) as e:
                raise ClientError(f"the audio block is not valid base64: {e}") from e
    return None


def wav_facts(data: bytes) -> tuple[int, int, float]:
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            rate, channels, frames = w.getframerate(), w.getnchannels(), w.getnframes()
    except (wave.Error, EOFError) as e:
        raise ClientError(f"the audio is not a readable WAV: {e}") from e
    return rate, channels, frames / rate if rate else 0.0


async def follow_with_get_job(client: Client, job_id: str, timeout: float) -> tuple[types.CallToolResult, int]:
    """Polls the `get_job` tool until the job ends; returns the last get_job result and the polls."""
    last = ""
    polls = 0
    with anyio.fail_after(timeout):
        while True:
            result = await client.call_tool("get_job", {"job_id": job_id})
            polls += 1
            if result.is_error:
                raise ClientError(f"get_job {job_id}: {text_of(result)}")
            view = result.structured_content or {}
            status = view.get("status", "?")
            progress = (view.get("progress") or {}).get("message")
            line = f"{status}: {progress}" if progress else status
            if line != last:
                log(f"job {job_id} {line}")
                last = line
            if status in TERMINAL_JOB:
                if status != "completed":
                    error = view.get("error") or {}
                    raise ClientError(
                        f"job {job_id} ended {status}: {error.get('kind')}: {error.get('message')}"
                    )
                return result, polls
            await anyio.sleep(0.5)


# The SDK reports a failed HTTP request as a bare JSON-RPC error ("Server returned an error
# response"); the HTTP status is kept here so that a wrong key or URL can be named as such.
refused: list[tuple[int, str]] = []


async def remember_refusals(response: httpx2.Response) -> None:
    if response.status_code in (401, 403, 404):
        refused.append((response.status_code, response.headers.get("www-authenticate", "")))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tasks = TasksExtension()
    # The API key goes on every HTTP request of the session; the SDK's default timeouts otherwise.
    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {args.api_key}"},
        timeout=httpx2.Timeout(30.0, read=300.0),
        event_hooks={"response": [remember_refusals]},
    )
    started = time.monotonic()
    async with http:
        client = Client(
            streamable_http_client(args.url, http_client=http),
            extensions=[] if args.no_tasks else [tasks],
            read_timeout_seconds=args.timeout,
            client_info=types.Implementation(name="avb-speech-client-example", version="1"),
        )
        async with client:
            info = client.server_info
            log(f"connected to {info.name if info else '?'} (protocol {client.protocol_version})")

            listed = await client.list_tools()
            names = sorted(t.name for t in listed.tools)
            log(f"{len(names)} tools: {', '.join(names)}")
            if "generate_speech" not in names:
                raise ClientError("the server has no generate_speech tool")
            speech_tool = next(t for t in listed.tools if t.name == "generate_speech")
            task_support = ((speech_tool.meta or {}).get(TASKS_EXTENSION) or {}).get("taskSupport")
            log(f"generate_speech task support: {task_support or 'none declared'}")

            arguments: dict[str, Any] = {"text": args.text}
            if args.voice:
                arguments["voice_id"] = args.voice
            log(f"calling generate_speech {json.dumps(arguments)}")
            result = await client.call_tool("generate_speech", arguments)
            mode = "task" if tasks.task_id else "direct"
            polls = tasks.polls
            if result.is_error:
                raise ClientError(f"generate_speech failed: {text_of(result)}")
            output = result.structured_content or {}
            job_id = output.get("job_id") or tasks.task_id
            if output.get("status") == "running":
                # A direct call whose wait budget ran out: the job goes on in Temporal.
                log(f"job {job_id} still running after the call returned; following it with get_job")
                result, polls = await follow_with_get_job(client, job_id, args.timeout)
                mode = "get_job"
            audio = wav_bytes_of(result)
            if audio is None:
                raise ClientError(f"job {job_id} finished without an audio/wav block: {text_of(result)}")

    rate, channels, secs = wav_facts(audio)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(audio)
    log(f"wrote {out} ({len(audio)} bytes, {rate} Hz, {channels} channel(s), {secs:.2f} s of audio)")
    print(f"{out}: {secs:.2f} s of speech")
    return {
        "ok": True,
        "mode": mode,
        "job_id": job_id,
        "out": str(out),
        "bytes": len(audio),
        "sample_rate": rate,
        "channels": channels,
        "duration_secs": round(secs, 3),
        "voice_id": output.get("voice_id", args.voice),
        "polls": polls,
        "elapsed_secs": round(time.monotonic() - started, 3),
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Speak a text with AgentVoiceBox's generate_speech (as an MCP task) and save the WAV.",
    )
    p.add_argument(
        "--url",
        default="http://127.0.0.1:8080/mcp",
        help="the server's Streamable HTTP endpoint (default http://127.0.0.1:8080/mcp, as `avb dev`)",
    )
    p.add_argument(
        "--api-key",
        default=os.environ.get("AVB_API_KEY"),
        help="API key sent as `Authorization: Bearer` (default: $AVB_API_KEY)",
    )
    p.add_argument("--text", default="Hello from the AgentVoiceBox speech client example.", help="what to say")
    p.add_argument("--voice", default=None, help="voice id (see the list_voices tool; server default af_heart)")
    p.add_argument("--out", default="speech.wav", help="where to write the WAV (default speech.wav)")
    p.add_argument(
        "--no-tasks",
        action="store_true",
        help="do not declare the tasks extension: a direct call, followed with get_job if still running",
    )
    p.add_argument("--timeout", type=float, default=180.0, help="overall timeout in seconds (default 180)")
    args = p.parse_args(argv)
    if not args.api_key:
        p.error(
            "no API key: pass --api-key or set AVB_API_KEY (`avb dev` writes one to "
            "$AVB_DATA_DIR/dev-keys.json; use its \"agent\" key)"
        )
    return args


def explain(e: BaseException, args: argparse.Namespace) -> str:
    """A readable message for what went wrong, unwrapping exception groups."""
    if isinstance(e, BaseExceptionGroup):
        return "; ".join(explain(x, args) for x in e.exceptions)
    if isinstance(e, ClientError):
        return str(e)
    if refused and refused[-1][0] == 404:
        return f"nothing at {args.url} (HTTP 404): --url must be the server's MCP endpoint, e.g. http://127.0.0.1:8080/mcp"
    if refused:
        status, challenge = refused[-1]
        why = "Unauthorized" if status == 401 else "Forbidden"
        return (
            f"{args.url} refused the API key ({status} {why}{': ' + challenge if challenge else ''}); "
            "check --api-key / AVB_API_KEY"
        )
    if isinstance(e, TimeoutError):
        return f"timed out after {args.timeout:g} s"
    if isinstance(e, httpx2.HTTPStatusError):
        return f"{args.url} answered HTTP {e.response.status_code}"
    if isinstance(e, httpx2.ConnectError):
        return f"cannot connect to {args.url} ({e}): is `avb dev` running there?"
    if isinstance(e, MCPError):
        return f"MCP error {e.code}: {e}"
    return f"{type(e).__name__}: {e}"


def main() -> int:
    args = parse_args(sys.argv[1:])

    async def guarded() -> dict[str, Any]:
        with anyio.fail_after(args.timeout):
            return await run(args)

    try:
        summary = anyio.run(guarded)
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001 - every failure becomes one readable line
        msg = explain(e, args)
        print(f"error: {msg}", file=sys.stderr, flush=True)
        print(json.dumps({"ok": False, "error": msg}), flush=True)
        return 1
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
