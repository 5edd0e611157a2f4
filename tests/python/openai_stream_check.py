"""Streamed speech with the official `openai` client.

`--mode stream`: `with_streaming_response`, timing the first byte from the request and asking
the job's state (REST) the moment it arrives; writes the file. `--mode whole`: `stream: false`
(extra_body), which must come with a Content-Length. `--mode leave`: reads the first bytes and
closes the connection. Prints one JSON line for the Rust test.
"""

import argparse
import json
import pathlib
import time

import httpx
import openai


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", required=True, help="the server's root URL")
    p.add_argument("--api-key", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--text", required=True)
    p.add_argument("--format", default="mp3")
    p.add_argument("--mode", choices=["stream", "whole", "leave"], required=True)
    args = p.parse_args()
    client = openai.OpenAI(base_url=f"{args.base_url}/v1", api_key=args.api_key, timeout=300)
    auth = {"Authorization": f"Bearer {args.api_key}"}
    path = pathlib.Path(args.out) / f"{args.mode}.{args.format}"
    report = {"path": str(path)}

    if args.mode == "whole":
        response = client.audio.speech.create(
            model="kokoro",
            voice="af_heart",
            input=args.text,
            response_format=args.format,
            extra_body={"stream": False},
        )
        response.write_to_file(path)
        report["job_id"] = response.response.headers.get("x-avb-job-id")
        report["content_length"] = response.response.headers.get("content-length")
        print(json.dumps(report))
        return

    started = time.monotonic()
    with client.audio.speech.with_streaming_response.create(
        model="kokoro", voice="af_heart", input=args.text, response_format=args.format
    ) as response:
        job_id = response.headers.get("x-avb-job-id")
        report["job_id"] = job_id
        report["content_length"] = response.headers.get("content-length")
        parts = response.iter_bytes()
        first = next(parts)
        report["first_byte_secs"] = time.monotonic() - started
        job = httpx.get(f"{args.base_url}/api/v2/jobs/{job_id}", headers=auth).json()
        report["status_at_first_byte"] = job["status"]
        if args.mode == "leave":
            # Leaving the block closes the connection with the rest unread.
            report["bytes_read"] = len(first)
            print(json.dumps(report))
            return
        with open(path, "wb") as f:
            f.write(first)
            for part in parts:
                f.write(part)
    report["total_secs"] = time.monotonic() - started
    print(json.dumps(report))


if __name__ == "__main__":
    main()
