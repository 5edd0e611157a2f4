// A real OAuth 2.1 / OpenID Connect authorization server for the end-to-end tests: the npm
// package oidc-provider (OpenID-certified), configured for an MCP server as its resource:
// dynamic client registration, authorization code + PKCE, RFC 8707 resource indicators with
// JWT access tokens for that resource (aud = the MCP URL), the scopes avb:agent and
// avb:operator, and a `tenant` claim. Login and consent are given automatically to the test
// user, so a test client follows the redirects and gets a code without a browser.
//
//   OIDC_PROVIDER_DIR=<node_modules dir> PORT=<port> RESOURCE=<MCP URL> TENANT=<name> \
//     node tests/oauth/authorization_server.mjs
//
// Prints "listening <issuer>" once it accepts requests. Keys are made at start (never stored).
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const modules = process.env.OIDC_PROVIDER_DIR;
const load = (name, file) => import(pathToFileURL(join(modules, name, file)).href);
const { default: Provider } = await load("oidc-provider", "lib/index.js");
const jose = await load("jose", "dist/webapi/index.js");

const port = Number(process.env.PORT);
const resource = process.env.RESOURCE;
const tenant = process.env.TENANT ?? "acme";
const issuer = `http://127.0.0.1:${port}`;
const SCOPES = "avb:agent avb:operator";
// Another resource (tokens for it must be refused by the MCP server: wrong audience).
const OTHER = "urn:agentvoicebox:another-resource";
// Tokens for this server that live one second (the expired variant).
const SHORT_LIVED = "urn:agentvoicebox:short-lived";

const { privateKey } = await jose.generateKeyPair("ES256", { extractable: true });
// A new key id at every start: a restart is a key rotation.
const signing = {
  ...(await jose.exportJWK(privateKey)),
  kid: `avb-test-${crypto.randomUUID()}`,
  alg: "ES256",
  use: "sig",
};

const provider = new Provider(issuer, {
  jwks: { keys: [signing] },
  cookies: { keys: [crypto.randomUUID()] },
  scopes: ["openid", "offline_access", "avb:agent", "avb:operator"],
  clientDefaults: {
    token_endpoint_auth_method: "none",
    grant_types: ["authorization_code", "refresh_token"],
    id_token_signed_response_alg: "ES256",
  },
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    registration: { enabled: true },
    // Machine clients get tokens directly: how the tests ask for the refused variants.
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, indicator) => {
        if (![resource, OTHER, SHORT_LIVED].includes(indicator)) {
          throw new Error(`unknown resource ${indicator}`);
        }
        const short = indicator === SHORT_LIVED;
        return {
          scope: SCOPES,
          audience: short ? resource : indicator,
          accessTokenTTL: short ? 1 : 600,
          accessTokenFormat: "jwt",
          jwt: { sign: { alg: "ES256" } },
        };
      },
    },
  },
  extraTokenClaims: () => ({ tenant }),
  findAccount: (_ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  ttl: { Session: 600, Interaction: 600, Grant: 600, AccessToken: 600, AuthorizationCode: 60 },
});
provider.proxy = false;

// Login as the test user and consent to what the client asked for, without a page.
provider.use(async (ctx, next) => {
  if (!ctx.path.startsWith("/interaction/")) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (process.env.AVB_OAUTH_DEBUG) console.error("interaction", details.prompt.name, JSON.stringify(details.prompt.reasons), JSON.stringify(details.prompt.details));
  let result;
  if (details.prompt.name === "login") {
    result = { login: { accountId: "test-user" } };
  } else {
    const grant = new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    // Everything the client asked for (the test user consents to all of it).
    const missing = details.prompt.details;
    if (missing.missingOIDCScope?.length) grant.addOIDCScope(missing.missingOIDCScope.join(" "));
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(" "));
    }
    result = { consent: { grantId: await grant.save() } };
  }
  await provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
});

provider.listen(port, "127.0.0.1", () => console.log(`listening ${issuer}`));
