"""An OAuth MCP client on the official Python SDK (`mcp.client.auth.OAuthClientProvider`),
as an IDE or agent host would run it against AgentVoiceBox with no API key:

401 -> the server's Protected Resource Metadata (from WWW-Authenticate) -> the authorization
server's metadata -> dynamic client registration -> authorization code + PKCE with the MCP URL as
resource -> token -> MCP calls with it.

The person's login and consent are given by the test authorization server itself; this script
plays the browser: it follows the authorization redirects until the one to its redirect URI and
hands the code to the SDK.

    python tests/python/oauth_client.py --url http://127.0.0.1:PORT/mcp [--issuer URL]

Prints one JSON line: what it saw (tool results, the token's claims); exits non-zero on failure.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from typing import Any
from urllib.parse import parse_qs, urljoin, urlparse

import anyio
import httpx2
from mcp import types
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider, TokenStorage
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

REDIRECT_URI = "http://127.0.0.1:9/callback"


class MemoryStorage(TokenStorage):
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class Browser:
    """Follows the authorization server's redirects (keeping its cookies) up to the redirect URI."""

    def __init__(self) -> None:
        self.result: AuthorizationCodeResult | None = None
        self.authorize_url: str | None = None

    async def redirect(self, url: str) -> None:
        self.authorize_url = url
        seen: list[str] = []
        async with httpx2.AsyncClient(follow_redirects=False, timeout=30) as http:
            for _ in range(10):
                response = await http.get(url)
                seen.append(f"{response.status_code} {url}")
                location = response.headers.get("location")
                if location is None:
                    raise RuntimeError(f"authorization stopped at {url}: {response.status_code} {response.text[:300]}")
                url = urljoin(url, location)
                if url.startswith(REDIRECT_URI):
                    query = parse_qs(urlparse(url).query)
                    if "error" in query:
                        raise RuntimeError(f"authorization refused: {query}")
                    first = lambda k: query.get(k, [None])[0]  # noqa: E731
                    self.result = AuthorizationCodeResult(code=query["code"][0], state=first("state"), iss=first("iss"))
                    return
        raise RuntimeError("too many redirects: " + " -> ".join(seen))

    async def callback(self) -> AuthorizationCodeResult:
        if self.result is None:
            raise RuntimeError("no authorization code")
        return self.result


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    storage = MemoryStorage()
    browser = Browser()
    provider = OAuthClientProvider(
        server_url=args.url,
        client_metadata=OAuthClientMetadata(
            client_name="avb-oauth-test",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=browser.redirect,
        callback_handler=browser.callback,
    )
    http = create_mcp_http_client(auth=provider)
    out: dict[str, Any] = {}
    async with Client(streamable_http_client(args.url, http_client=http), read_timeout_seconds=60) as client:
        echo = await client.call_tool("durable_echo", {"message": "hello over OAuth"})
        out["echo"] = [c.text for c in echo.content if isinstance(c, types.TextContent)]
        out["echo_is_error"] = bool(echo.is_error)
        speech = await client.call_tool("generate_speech", {"text": "Signed in with OAuth."})
        out["speech_is_error"] = bool(speech.is_error)
        out["speech_audio"] = [c.mime_type for c in speech.content if isinstance(c, types.AudioContent)]
        out["speech_text"] = [c.text for c in speech.content if isinstance(c, types.TextContent)]
        grant = await client.call_tool("grant_credits", {"credits": 1})
        out["grant_is_error"] = bool(grant.is_error)
        out["grant"] = [c.text for c in grant.content if isinstance(c, types.TextContent)]
    token = storage.tokens.access_token if storage.tokens else ""
    out["claims"] = claims_of(token) if token.count(".") == 2 else {}
    query = parse_qs(urlparse(browser.authorize_url or "").query)
    out["authorize"] = {k: v[0] for k, v in query.items() if k in ("resource", "scope", "code_challenge_method")}
    return out


async def refused(args: argparse.Namespace, out: dict[str, Any]) -> None:
    """Tokens the MCP server must refuse, from the same authorization server: for another
    resource (401, wrong audience), expired (401), and an agent's token on an operator's action
    (403, insufficient_scope). Machine tokens (client credentials) are how the test gets them."""
    # No connection reuse: a server may close a connection after refusing a request whose body
    # it did not read, and a reused one would then fail for the next probe.
    fresh = httpx2.Limits(max_keepalive_connections=0)
    async with httpx2.AsyncClient(timeout=30, limits=fresh) as http:
        meta = (await http.get(args.issuer + "/.well-known/openid-configuration")).json()
        reg = await http.post(
            meta["registration_endpoint"],
            json={
                "grant_types": ["client_credentials"],
                "response_types": [],
                "token_endpoint_auth_method": "client_secret_post",
                "redirect_uris": [],
            },
        )
        client = reg.json()

        async def token(resource: str) -> str:
            form = {
                "grant_type": "client_credentials",
                "client_id": client["client_id"],
                "client_secret": client["client_secret"],
                "resource": resource,
                "scope": "avb:agent",
            }
            answer = await http.post(meta["token_endpoint"], data=form)
            body = answer.json()
            if "access_token" not in body:
                raise RuntimeError(f"token request refused: {body}")
            return body["access_token"]

        async def mcp_status(access_token: str) -> tuple[int, str]:
            init = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "avb-oauth-test", "version": "1"},
                },
            }
            r = await http.post(
                args.url,
                json=init,
                headers={
                    "Authorization": f"Bearer {access_token}",
                    "Accept": "application/json, text/event-stream",
                },
            )
            return r.status_code, r.headers.get("www-authenticate", "")

        good = await token(args.url)
        out["machine_ok"] = (await mcp_status(good))[0]
        out["other_audience"] = await mcp_status(await token("urn:agentvoicebox:another-resource"))
        expiring = await token("urn:agentvoicebox:short-lived")
        lifetime = claims_of(expiring)
        out["expiring_lifetime"] = lifetime.get("exp", 0) - lifetime.get("iat", 0)
        await anyio.sleep(2.5)
        out["expired"] = await mcp_status(expiring)
        base = args.url.rsplit("/mcp", 1)[0]
        grant = await http.post(
            base + "/api/v2/billing/grants",
            json={"credits": 1},
            headers={"Authorization": f"Bearer {good}"},
        )
        out["operator_action"] = [grant.status_code, grant.headers.get("www-authenticate", "")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--issuer", help="also check the tokens the server must refuse")
    args = parser.parse_args()

    async def everything() -> dict[str, Any]:
        out = await run(args)
        if args.issuer:
            await refused(args, out)
        return out

    try:
        print(json.dumps(anyio.run(everything)))
    except Exception as e:  # noqa: BLE001 - the test prints what went wrong
        print(f"oauth client failed: {type(e).__name__}: {e}", file=sys.stderr)
        raise


if __name__ == "__main__":
    main()
