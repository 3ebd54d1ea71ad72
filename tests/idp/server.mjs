// Loopback OpenID provider used by portcullis' integration tests.
//
// It wraps `oidc-provider` (panva) in a plain node http server bound to
// 127.0.0.1 and adds a few routes of its own:
//
//   GET  /interaction/:uid          a minimal login or consent page (plain HTML form, no JavaScript)
//   POST /interaction/:uid/login    form field `login` = the account id (any `password` is accepted)
//   POST /interaction/:uid/confirm  grants exactly what the authorization request asked for
//   POST /interaction/:uid/abort    ends the interaction with `access_denied`
//   POST /admin/rotate              adds a new RS256 signing key and signs with it from then on: {"kid": "..."}
//   GET  /admin/jwks-hits           how many requests the JWKS endpoint has answered: {"hits": n}
//
// Protocol with the test harness (tests/support/idp.rs):
//   * listens on 127.0.0.1, port `IDP_PORT` or an ephemeral one;
//   * once it serves, prints exactly one line on stdout: `ISSUER http://127.0.0.1:PORT`;
//   * exits when its stdin reaches end-of-file (the harness holds the write end of a pipe, so the
//     provider dies with the test process even when that one is killed), and on SIGTERM/SIGINT.
//     Set `IDP_IGNORE_STDIN=1` to run it by hand with no stdin.
//   * errors go to stderr; set `IDP_DEBUG=1` to also log every rejected request there.

import { createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';

import Provider, { errors } from 'oidc-provider';

const HOST = '127.0.0.1';
const JWKS_PATH = '/jwks';
const DEBUG = process.env.IDP_DEBUG === '1';

const ACCESS_TOKEN_TTL = 300; // seconds
const SHORT_ACCESS_TOKEN_TTL = 3; // seconds, for the `urn:portcullis:short` resource
const API_SCOPES = 'read write admin';

// ---------------------------------------------------------------------------------------------
// Signing keys
//
// `keys.rsa` is ordered newest first; `keys.rsa[0]` is the one that signs RS256 tokens. Rotation
// prepends a new key and keeps the old ones published, so tokens issued before a rotation still
// verify against the JWKS.
// ---------------------------------------------------------------------------------------------

let keySerial = 0;

function newSigningKey(alg) {
  keySerial += 1;
  const { privateKey } = alg === 'RS256'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const kid = `${alg.toLowerCase()}-${keySerial}-${randomBytes(6).toString('hex')}`;
  return { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}

const keys = {
  rsa: [newSigningKey('RS256')],
  ec: newSigningKey('ES256'),
};

function currentJwks() {
  // The newest RS256 key comes first: oidc-provider takes the first key matching an algorithm
  // when nothing names a `kid`, and the resource servers below also name it explicitly.
  return { keys: [...keys.rsa, keys.ec] };
}

// ---------------------------------------------------------------------------------------------
// Resource servers (RFC 8707 resource indicators)
// ---------------------------------------------------------------------------------------------

function resourceServer(indicator) {
  const jwtWith = (alg) => ({
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg, kid: alg === 'ES256' ? keys.ec.kid : keys.rsa[0].kid } },
  });

  switch (indicator) {
    case 'urn:portcullis:api':
      return { scope: API_SCOPES, audience: indicator, ...jwtWith('RS256') };
    case 'urn:portcullis:api-es':
      return { scope: API_SCOPES, audience: indicator, ...jwtWith('ES256') };
    case 'urn:portcullis:other':
      return { scope: API_SCOPES, audience: indicator, ...jwtWith('RS256') };
    case 'urn:portcullis:short':
      return {
        scope: API_SCOPES,
        audience: indicator,
        accessTokenTTL: SHORT_ACCESS_TOKEN_TTL,
        ...jwtWith('RS256'),
      };
    case 'urn:portcullis:opaque':
      return { scope: API_SCOPES, audience: indicator, accessTokenFormat: 'opaque' };
    default:
      return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Storage shared by every Provider instance
//
// A Provider's keystore is fixed when it is constructed, so a key rotation builds a new Provider
// (see `rotate` below). Everything a client or user holds lives here instead of in the Provider:
// sessions, interactions, grants, authorization codes and opaque tokens. With the same cookie
// keys, a login started before a rotation completes after it, and opaque tokens issued before it
// still introspect and revoke.
// ---------------------------------------------------------------------------------------------

const store = new Map(); // key -> { value, expiresAt (ms since epoch) | undefined }

function storeGet(key) {
  const entry = store.get(key);
  if (!entry) return undefined;
  if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
    store.delete(key);
    return undefined;
  }
  return entry.value;
}

function storeSet(key, value, expiresIn) {
  const expiresAt = expiresIn ? Date.now() + expiresIn * 1000 : undefined;
  store.set(key, { value, expiresAt });
}

// Models whose entries are removed when the grant they belong to is revoked.
const GRANT_BOUND = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
]);

class SharedMemoryAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    if (this.model === 'Session') {
      storeSet(`sessionUid:${payload.uid}`, id, expiresIn);
    }
    if (payload.userCode) {
      storeSet(`userCode:${payload.userCode}`, id, expiresIn);
    }
    if (GRANT_BOUND.has(this.model) && payload.grantId) {
      const grantKey = `grant:${payload.grantId}`;
      const members = storeGet(grantKey) ?? [];
      members.push(key);
      storeSet(grantKey, members, expiresIn);
    }
    storeSet(key, payload, expiresIn);
  }

  async find(id) {
    return storeGet(this.key(id));
  }

  async findByUid(uid) {
    const id = storeGet(`sessionUid:${uid}`);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = storeGet(`userCode:${userCode}`);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const payload = storeGet(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  // eslint-disable-next-line class-methods-use-this
  async revokeByGrantId(grantId) {
    const grantKey = `grant:${grantId}`;
    for (const key of storeGet(grantKey) ?? []) store.delete(key);
    store.delete(grantKey);
  }
}

// ---------------------------------------------------------------------------------------------
// DPoP (RFC 9449): sender-constrained tokens
//
// A token request carrying a `DPoP` proof gets a token bound to the proof's key: a JWT access
// token with `cnf.jkt`, or an opaque token whose introspection answer has `cnf.jkt` and
// `token_type: "DPoP"`. Requests without a proof still get plain bearer tokens. The provider
// demands no nonce of its own.
// ---------------------------------------------------------------------------------------------

const DPOP_FEATURE = {
  enabled: true,
  requireNonce: () => false,
};

// ---------------------------------------------------------------------------------------------
// Provider configuration
// ---------------------------------------------------------------------------------------------

// Fixed for the life of the process and shared by all Provider instances (see above).
const COOKIE_KEYS = [randomBytes(32).toString('base64url')];

const CLIENTS = [
  {
    // The application: gets tokens through the authorization code flow (as a user) or the client
    // credentials grant (as itself).
    client_id: 'portcullis-client',
    client_secret: 'portcullis-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    // `refresh_token` (with the `offline_access` scope and `prompt=consent`) is for the test
    // that introspects a refresh token.
    grant_types: ['authorization_code', 'client_credentials', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: ['http://127.0.0.1/callback'],
  },
  {
    // The resource server, introspecting with HTTP Basic credentials.
    client_id: 'portcullis-rs',
    client_secret: 'rs-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: [],
    response_types: [],
    redirect_uris: [],
  },
  {
    // The resource server again, introspecting with credentials in the form body.
    client_id: 'portcullis-rs-post',
    client_secret: 'rs-secret',
    token_endpoint_auth_method: 'client_secret_post',
    grant_types: [],
    response_types: [],
    redirect_uris: [],
  },
  // ── private_key_jwt (issue 13) ──────────────────────────────────────────────────────────────
  {
    // The resource server introspecting with a signed client assertion (RFC 7523); the private
    // key is tests/keys/introspection-client-es256.pem.
    client_id: 'portcullis-rs-jwt',
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: 'ES256',
    jwks: { keys: [introspectionClientJwk()] },
    grant_types: [],
    response_types: [],
    redirect_uris: [],
  },
];

/** The public JWK of the `portcullis-rs-jwt` client's test key. */
function introspectionClientJwk() {
  const pem = readFileSync(new URL('../keys/introspection-client-es256.pem', import.meta.url));
  return { ...createPublicKey(pem).export({ format: 'jwk' }), kid: 'rs-jwt', use: 'sig', alg: 'ES256' };
}

const INTROSPECTING_CLIENTS = new Set(['portcullis-rs', 'portcullis-rs-post', 'portcullis-rs-jwt']);

function configuration() {
  // A fresh object every time: Provider keeps (and adjusts) the configuration it is given.
  return {
    adapter: SharedMemoryAdapter,
    clients: CLIENTS.map((client) => ({ ...client })),
    jwks: currentJwks(),
    cookies: {
      keys: COOKIE_KEYS,
      long: { signed: true, httpOnly: true, sameSite: 'lax' },
      short: { signed: true, httpOnly: true, sameSite: 'lax' },
    },
    routes: { jwks: JWKS_PATH },
    scopes: ['openid', 'offline_access'], // resource server scopes (read, write, admin) come from `resourceServer`
    claims: { openid: ['sub'] },
    async findAccount(ctx, sub) {
      return {
        accountId: sub,
        async claims() {
          return { sub };
        },
      };
    },
    interactions: {
      url(ctx, interaction) {
        return `/interaction/${interaction.uid}`;
      },
    },
    pkce: {
      methods: ['S256'],
      required: () => true,
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // The resource-server clients may introspect any token; any other client only its own.
        async allowedPolicy(ctx, client, token) {
          return INTROSPECTING_CLIENTS.has(client.clientId) || token.clientId === client.clientId;
        },
      },
      revocation: { enabled: true },
      dPoP: DPOP_FEATURE,
      resourceIndicators: {
        enabled: true,
        // No default: a request that names no resource gets an opaque token for the userinfo
        // endpoint (or is rejected where a resource is needed).
        async defaultResource(ctx, client, oneOf) {
          return oneOf;
        },
        // At the token endpoint a code granted for a single resource may omit `resource`.
        async useGrantedResource() {
          return true;
        },
        async getResourceServerInfo(ctx, indicator) {
          const info = resourceServer(indicator);
          if (!info) throw new errors.InvalidTarget(`unknown resource indicator ${indicator}`);
          return info;
        },
      },
    },
    ttl: {
      AccessToken: (ctx, token) => token.resourceServer?.accessTokenTTL ?? ACCESS_TOKEN_TTL,
      ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL ?? ACCESS_TOKEN_TTL,
      AuthorizationCode: 60,
      IdToken: 300,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// MCP servers and step-up (tests/mcp.rs, tests/step_up.rs)
//
// * Any `http://127.0.0.1:PORT/mcp` is a resource indicator: an MCP server on loopback, with the
//   scopes `mcp:read mcp:write`, getting RS256 JWT access tokens whose `aud` is that URI.
//   Any `http://127.0.0.1:PORT/api` likewise, with the scopes of `urn:portcullis:api`.
// * `urn:portcullis:step-up` is an API resource like `urn:portcullis:api`;
//   `urn:portcullis:step-up-opaque` the same with opaque tokens (for introspection).
// * Access tokens for those resources carry `acr` and `auth_time` from the authorization code
//   (or refresh token) they were issued for.
// * Dynamic client registration (RFC 7591) is open, so an MCP client can register itself.
// * At the login prompt, the user authenticates at the first level the request asked for in
//   `acr_values` (and at no named level when it asked for none).
// ---------------------------------------------------------------------------------------------

const MCP_SCOPES = 'mcp:read mcp:write';
const STEP_UP_RESOURCE = 'urn:portcullis:step-up';
const STEP_UP_OPAQUE_RESOURCE = 'urn:portcullis:step-up-opaque';
const MCP_RESOURCE = /^http:\/\/127\.0\.0\.1:[0-9]{1,5}\/mcp$/;
const API_URL_RESOURCE = /^http:\/\/127\.0\.0\.1:[0-9]{1,5}\/api$/;

function stepUpResourceServer(indicator) {
  const jwt = { accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256', kid: keys.rsa[0].kid } } };
  if (MCP_RESOURCE.test(indicator)) return { scope: MCP_SCOPES, audience: indicator, ...jwt };
  if (API_URL_RESOURCE.test(indicator)) return { scope: API_SCOPES, audience: indicator, ...jwt };
  if (indicator === STEP_UP_RESOURCE) return { scope: API_SCOPES, audience: indicator, ...jwt };
  if (indicator === STEP_UP_OPAQUE_RESOURCE) {
    return { scope: API_SCOPES, audience: indicator, accessTokenFormat: 'opaque' };
  }
  return undefined;
}

function loginAcr(params) {
  const [acr] = String(params.acr_values ?? '').split(' ').filter(Boolean);
  return acr === undefined ? {} : { acr };
}

function withStepUp(config) {
  const indicators = config.features.resourceIndicators;
  const base = indicators.getResourceServerInfo;
  indicators.getResourceServerInfo = async (ctx, indicator, client) => (
    stepUpResourceServer(indicator) ?? base(ctx, indicator, client)
  );
  config.features.registration = { enabled: true };
  // Registration requests name the scopes the client will ask for; oidc-provider checks them
  // against its own list.
  config.scopes = [...config.scopes, ...MCP_SCOPES.split(' ')];
  // Registered MCP clients ask for the refresh_token grant; oidc-provider offers it once
  // `issueRefreshToken` is configured. Same rule as its default (offline_access only).
  config.issueRefreshToken = async (ctx, client, code) => (
    client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access')
  );
  config.extraTokenClaims = async (ctx, token) => {
    if (stepUpResourceServer(token.resourceServer?.audience) === undefined) return undefined;
    const { AuthorizationCode, RefreshToken } = ctx.oidc.entities;
    const from = AuthorizationCode ?? RefreshToken;
    if (from === undefined) return undefined;
    return { acr: from.acr, auth_time: from.authTime };
  };
  return config;
}

// ---------------------------------------------------------------------------------------------

function buildProvider(issuer) {
  const provider = new Provider(issuer, withStepUp(configuration()));
  provider.on('server_error', (ctx, err) => {
    console.error(`idp: server error on ${ctx.method} ${ctx.path}:`, err);
  });
  if (DEBUG) {
    for (const event of [
      'authorization.error', 'grant.error', 'introspection.error', 'revocation.error',
      'jwks.error', 'discovery.error', 'userinfo.error', 'end_session.error',
    ]) {
      provider.on(event, (ctx, err) => {
        console.error(`idp: ${event} on ${ctx.method} ${ctx.path}: ${err.name}: ${err.message}`
          + (err.error_description ? ` (${err.error_description})` : ''));
      });
    }
  }
  return { provider, handle: provider.callback() };
}

// ---------------------------------------------------------------------------------------------
// HTTP plumbing
// ---------------------------------------------------------------------------------------------

let current; // { provider, handle }; replaced on key rotation
let jwksHits = 0;

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

function sendHtml(res, status, body) {
  const text = `<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>portcullis test IdP</title></head><body>\n${body}\n</body></html>\n`;
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

const escapeHtml = (value) => String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('form body too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

// -- interactions: login and consent, as plain forms ------------------------------------------

async function interaction(req, res, uid, action) {
  const { provider } = current;
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    // Unknown, expired or cookie-less interaction.
    sendHtml(res, 400, `<p>interaction not found: ${escapeHtml(err.message)}</p>`);
    return;
  }
  if (details.uid !== uid) {
    sendHtml(res, 400, '<p>interaction cookie does not match the URL</p>');
    return;
  }
  const { prompt, params, session, grantId } = details;
  const base = `/interaction/${encodeURIComponent(uid)}`;

  if (req.method === 'GET' && action === undefined) {
    if (prompt.name === 'login') {
      sendHtml(res, 200, `<h1>Sign in to ${escapeHtml(params.client_id)}</h1>
<form method="post" action="${base}/login">
<input type="text" name="login" autofocus>
<input type="password" name="password">
<button type="submit">Sign in</button>
</form>`);
    } else if (prompt.name === 'consent') {
      sendHtml(res, 200, `<h1>${escapeHtml(params.client_id)} asks for: ${escapeHtml(params.scope ?? '')}</h1>
<form method="post" action="${base}/confirm"><button type="submit">Allow</button></form>
<form method="post" action="${base}/abort"><button type="submit">Deny</button></form>`);
    } else {
      sendHtml(res, 501, `<p>unsupported prompt ${escapeHtml(prompt.name)}</p>`);
    }
    return;
  }

  if (req.method !== 'POST') {
    sendHtml(res, 405, '<p>method not allowed</p>');
    return;
  }

  switch (action) {
    case 'login': {
      const form = await readForm(req);
      const login = form.get('login');
      if (prompt.name !== 'login' || !login) {
        sendHtml(res, 400, '<p>expected a login prompt and a non-empty login</p>');
        return;
      }
      await provider.interactionFinished(req, res, { login: { accountId: login, ...loginAcr(params) } }, {
        mergeWithLastSubmission: false,
      });
      return;
    }
    case 'confirm': {
      await readForm(req);
      if (prompt.name !== 'consent') {
        sendHtml(res, 400, '<p>expected a consent prompt</p>');
        return;
      }
      // Grant exactly what is missing for this request: the OpenID scopes and claims, and for
      // each requested resource the scopes asked for (so `scope=openid read` gives a token
      // with `read` only).
      const grant = grantId
        ? await provider.Grant.find(grantId)
        : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = prompt.details;
      if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
      if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missingResourceScopes ?? {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, {
        mergeWithLastSubmission: true,
      });
      return;
    }
    case 'abort':
      await provider.interactionFinished(req, res, {
        error: 'access_denied',
        error_description: 'the end-user denied the request',
      }, { mergeWithLastSubmission: false });
      return;
    default:
      sendHtml(res, 404, '<p>not found</p>');
  }
}

// -- admin routes ------------------------------------------------------------------------------

function rotate(issuer) {
  // oidc-provider reads `jwks` once, when the Provider is constructed, and offers no way to add a
  // key to a running instance. So: generate a key, put it first among the RS256 keys (the old
  // ones stay published), and swap in a new Provider built from the extended key set. The new
  // instance shares the storage and cookie keys of the old one, so sessions, grants, pending
  // interactions and opaque tokens carry over; requests already running finish on the old one.
  const key = newSigningKey('RS256');
  keys.rsa.unshift(key);
  current = buildProvider(issuer);
  return key.kid;
}

async function admin(req, res, path, issuer) {
  if (path === '/admin/rotate' && req.method === 'POST') {
    sendJson(res, 200, { kid: rotate(issuer) });
  } else if (path === '/admin/jwks-hits' && req.method === 'GET') {
    sendJson(res, 200, { hits: jwksHits });
  } else {
    sendJson(res, 404, { error: 'not_found' });
  }
}

// ---------------------------------------------------------------------------------------------
// Startup
// ---------------------------------------------------------------------------------------------

const server = http.createServer((req, res) => {
  const issuer = `http://${HOST}:${server.address().port}`;
  const path = new URL(req.url, issuer).pathname;

  const fail = (err) => {
    console.error(`idp: error on ${req.method} ${req.url}:`, err);
    if (!res.headersSent) sendJson(res, 500, { error: 'server_error' });
    else res.destroy();
  };

  if (current === undefined) {
    sendJson(res, 503, { error: 'starting' });
    return;
  }
  try {
    if (path.startsWith('/admin/')) {
      admin(req, res, path, issuer).catch(fail);
      return;
    }
    const interactionMatch = /^\/interaction\/([^/]+)(?:\/([a-z]+))?$/.exec(path);
    if (interactionMatch) {
      const [, uid, action] = interactionMatch;
      interaction(req, res, decodeURIComponent(uid), action).catch(fail);
      return;
    }
    if (path === JWKS_PATH) jwksHits += 1;
    current.handle(req, res);
  } catch (err) {
    fail(err);
  }
});

function shutdown() {
  server.close();
  process.exit(0);
}

process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (process.env.IDP_IGNORE_STDIN !== '1') {
  process.stdin.on('end', shutdown);
  process.stdin.on('close', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
}

server.on('error', (err) => {
  console.error('idp: cannot listen:', err);
  process.exit(1);
});

const port = process.env.IDP_PORT ? Number(process.env.IDP_PORT) : 0;
server.listen(port, HOST, () => {
  const issuer = `http://${HOST}:${server.address().port}`;
  try {
    current = buildProvider(issuer);
  } catch (err) {
    console.error('idp: cannot configure the provider:', err);
    process.exit(1);
  }
  process.stdout.write(`ISSUER ${issuer}\n`);
});
