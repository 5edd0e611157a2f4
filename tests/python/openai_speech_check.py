"""The official `openai` client against AgentVoiceBox's OpenAI-compatible speech API.

Writes one file per response format (and one streamed with `with_streaming_response`), sends
bad requests, and prints one JSON line: the files written and, for each bad request, the
status, error type and parameter the client saw. The Rust test decodes the files with ffprobe.
"""

import argparse
import json
import pathlib

import openai


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", required=True)
    p.add_argument("--api-key", default="sk-unused")
    p.add_argument("--out", required=True)
    p.add_argument("--text", required=True)
    args = p.parse_args()
    out = pathlib.Path(args.out)
    client = openai.OpenAI(base_url=args.base_url, api_key=args.api_key, timeout=300)

    files = {}
    for fmt in ["mp3", "opus", "flac", "wav", "pcm"]:
        response = client.audio.speech.create(
            model="tts-1", voice="alloy", input=args.text, response_format=fmt
        )
        path = out / f"speech.{fmt}"
        response.write_to_file(path)
        files[fmt] = {
            "path": str(path),
            "content_type": response.response.headers.get("content-type"),
            "job_id": response.response.headers.get("x-avb-job-id"),
        }
    with client.audio.speech.with_streaming_response.create(
        model="kokoro", voice="bf_emma", input=args.text, response_format="mp3", speed=1.2
    ) as response:
        path = out / "streamed.mp3"
        response.stream_to_file(path)
        files["streamed"] = {
            "path": str(path),
            "content_type": response.headers.get("content-type"),
            "job_id": response.headers.get("x-avb-job-id"),
        }

    blended = client.audio.speech.create(
        model="tts-1", voice="af_bella(2)+af_sky(1)", input=args.text, response_format="wav"
    )
    path = out / "blend.wav"
    blended.write_to_file(path)
    files["blend"] = {
        "path": str(path),
        "content_type": blended.response.headers.get("content-type"),
        "job_id": blended.response.headers.get("x-avb-job-id"),
    }

    errors = {}
    bad = {
        "voice": dict(model="tts-1", voice="af_nobody", input="hi"),
        "blend": dict(model="tts-1", voice="af_bella(0)+af_sky", input="hi"),
        "blend_voice": dict(model="tts-1", voice="af_bella(1)+af_nobody(1)", input="hi"),
        "format": dict(model="tts-1", voice="alloy", input="hi", response_format="aac"),
        "empty": dict(model="tts-1", voice="alloy", input="   "),
        "speed": dict(model="tts-1", voice="alloy", input="hi", speed=9.0),
        "model": dict(model="whisper-1", voice="alloy", input="hi"),
        "long": dict(model="tts-1", voice="alloy", input="word " * 20000),
        "language": dict(model="tts-1", voice="alloy", input="hi", extra_body={"language": "klingon"}),
    }
    for name, kwargs in bad.items():
        try:
            client.audio.speech.create(**kwargs)
            errors[name] = {"status": 200}
        except openai.APIStatusError as e:
            body = e.body if isinstance(e.body, dict) else {}
            errors[name] = {
                "status": e.status_code,
                "type": body.get("type"),
                "param": body.get("param"),
                "message": body.get("message"),
            }

    models = [m.id for m in client.models.list()]
    print(json.dumps({"files": files, "errors": errors, "models": models}))


if __name__ == "__main__":
    main()
