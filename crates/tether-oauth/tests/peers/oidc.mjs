// Test-only OpenID provider for tether-oauth's integration tests. Listens on 127.0.0.1 only.
//
//   node oidc.mjs [port]        (0 or absent: any free port)
//
// Prints one JSON line on stdout once listening: {"port":…, "issuer":"http://127.0.0.1:…"}.
// Environment:
//   ACCESS_TOKEN_TTL   access token lifetime in seconds (default 300; short values test refresh)
//   RESOURCE_SCOPES    scopes the MCP resource accepts (default "mcp:tools mcp:admin")
//   STATIC_REDIRECT_URI redirect URI of the pre-registered clients (default http://127.0.0.1:9/callback)
//   OIDC_DEBUG         when set, log interactions and token responses to stderr (test debugging)
//
// Interactions approve at once (login as "test-user", consent to whatever is missing), so an
// authorization request can be completed by following redirects with a cookie jar.
// GET /__test/stats reports counters (registrations, token requests per grant type, client
// authentication seen at the token endpoint) so tests can assert what reached the AS.
import http from 'node:http';
import Provider from 'oidc-provider';

const port = Number(process.argv[2] ?? 0);
const ttl = Number(process.env.ACCESS_TOKEN_TTL ?? 300);
const resourceScopes = process.env.RESOURCE_SCOPES ?? 'mcp:tools mcp:admin';
const staticRedirect = process.env.STATIC_REDIRECT_URI ?? 'http://127.0.0.1:9/callback';

const tokenMode = { status: 0, delayMs: 0 };
const stats = {
  registrations: 0,
  grants: {},
  grantErrors: {},
  tokenRequests: [],
  grantsRevoked: 0,
};

const staticClient = (id, secret, method) => ({
  client_id: id,
  ...(secret ? { client_secret: secret } : {}),
  token_endpoint_auth_method: method,
  redirect_uris: [staticRedirect],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  application_type: 'native',
});

// oidc-provider's built-in memory adapter is an LRU of 1,000 entries: a benchmark with 1,000
// users (each a session, grant, codes and tokens) would see grants evicted and their refresh
// tokens refused. This one keeps everything until it expires (a test peer lives minutes).
const entries = new Map();
const alive = (entry) => entry && (entry.expiresAt === undefined || entry.expiresAt > Date.now());
class UnboundedAdapter {
  constructor(model) { this.model = model; }
  key(id) { return `${this.model}:${id}`; }
  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : undefined;
    entries.set(key, { payload, expiresAt });
    if (payload.grantId) {
      const grant = `grant:${payload.grantId}`;
      const members = entries.get(grant)?.payload ?? new Set();
      members.add(key);
      entries.set(grant, { payload: members });
    }
    if (payload.uid) entries.set(`sessionUid:${payload.uid}`, { payload: id, expiresAt });
    if (payload.userCode) entries.set(`userCode:${payload.userCode}`, { payload: id, expiresAt });
  }
  async find(id) {
    const entry = entries.get(this.key(id));
    return alive(entry) ? entry.payload : undefined;
  }
  async findByUid(uid) {
    const entry = entries.get(`sessionUid:${uid}`);
    return alive(entry) ? this.find(entry.payload) : undefined;
  }
  async findByUserCode(userCode) {
    const entry = entries.get(`userCode:${userCode}`);
    return alive(entry) ? this.find(entry.payload) : undefined;
  }
  async consume(id) {
    const entry = entries.get(this.key(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }
  async destroy(id) { entries.delete(this.key(id)); }
  async revokeByGrantId(grantId) {
    const grant = `grant:${grantId}`;
    for (const key of entries.get(grant)?.payload ?? []) entries.delete(key);
    entries.delete(grant);
  }
}

const server = http.createServer();
server.listen(port, '127.0.0.1', () => {
  const { port: actual } = server.address();
  const issuer = `http://127.0.0.1:${actual}`;
  const provider = new Provider(issuer, {
    adapter: UnboundedAdapter,
    clients: [
      staticClient('confidential-basic', 'basic-secret-0123456789abcdef', 'client_secret_basic'),
      staticClient('confidential-post', 'post-secret-0123456789abcdef', 'client_secret_post'),
      staticClient('public-client', undefined, 'none'),
      {
        // The MCP resource server, which introspects bearer tokens.
        client_id: 'resource-server',
        client_secret: 'rs-secret-0123456789abcdef',
        token_endpoint_auth_method: 'client_secret_basic',
        redirect_uris: [],
        grant_types: [],
        response_types: [],
      },
    ],
    pkce: { required: () => true },
    scopes: ['openid', 'offline_access'],
    features: {
      devInteractions: { enabled: false },
      registration: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => oneOf,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, resourceIndicator) => ({
          scope: resourceScopes,
          audience: resourceIndicator,
          accessTokenTTL: ttl,
          accessTokenFormat: 'opaque',
        }),
      },
    },
    rotateRefreshToken: true,
    issueRefreshToken: async (_ctx, client, code) =>
      client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
    ttl: {
      AccessToken: ttl,
      AuthorizationCode: 60,
      Grant: 3600,
      Interaction: 600,
      Session: 3600,
      RefreshToken: 86400,
    },
    interactions: { url: async (_ctx, interaction) => `/interaction/${interaction.uid}` },
    findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
    cookies: { keys: ['tether-oauth-test-cookie-key'] },
  });

  provider.on('registration_create.success', () => { stats.registrations += 1; });
  provider.on('grant.success', (ctx) => {
    if (process.env.OIDC_DEBUG) console.error('grant', ctx.oidc.params.grant_type, JSON.stringify(ctx.body));
    const type = ctx.oidc.params.grant_type;
    stats.grants[type] = (stats.grants[type] ?? 0) + 1;
  });
  provider.on('grant.error', (ctx, err) => {
    const type = ctx.oidc.params?.grant_type ?? 'unknown';
    const key = `${type}:${err.error ?? err.message}`;
    stats.grantErrors[key] = (stats.grantErrors[key] ?? 0) + 1;
  });
  provider.on('grant.revoked', () => { stats.grantsRevoked += 1; });

  const callback = provider.callback();

  async function interaction(req, res) {
    const details = await provider.interactionDetails(req, res);
    const { prompt, params, session, grantId } = details;
    let result = {};
    if (process.env.OIDC_DEBUG) console.error('interaction', prompt.name, JSON.stringify(prompt.details), params.scope);
    if (prompt.name === 'login') {
      result = { login: { accountId: 'test-user' } };
    } else if (prompt.name === 'consent') {
      const grant = grantId
        ? await provider.Grant.find(grantId)
        : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      const missing = prompt.details;
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      if (missing.missingResourceScopes) {
        for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
          grant.addResourceScope(indicator, scopes.join(' '));
        }
      }
      result = { consent: { grantId: await grant.save() } };
    }
    await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
  }

  server.on('request', (req, res) => {
    if (req.method === 'GET' && req.url === '/__test/stats') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(stats));
      return;
    }
    if (req.url.startsWith('/interaction/')) {
      interaction(req, res).catch((err) => {
        res.statusCode = 500;
        res.end(String(err?.message ?? err));
      });
      return;
    }
    if (req.method === 'POST' && req.url.startsWith('/__test/token-mode')) {
      // Test knob: the token endpoint answers `status` without processing, or answers only
      // `delay_ms` after it processed the request (a rotation done, its answer late).
      const query = new URL(req.url, issuer).searchParams;
      tokenMode.status = Number(query.get('status') ?? 0);
      tokenMode.delayMs = Number(query.get('delay_ms') ?? 0);
      res.end('{}');
      return;
    }
    if (req.method === 'POST' && req.url === '/token') {
      // Which client authentication arrived: the header, or (by elimination) the body.
      stats.tokenRequests.push({ basicAuth: Boolean(req.headers.authorization) });
      if (tokenMode.status) {
        res.statusCode = tokenMode.status;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ error: 'temporarily_unavailable' }));
        return;
      }
      if (tokenMode.delayMs) {
        const end = res.end.bind(res);
        const delay = tokenMode.delayMs;
        res.end = (...args) => { setTimeout(() => end(...args), delay); return res; };
      }
    }
    callback(req, res);
  });

  process.stdout.write(`${JSON.stringify({ port: actual, issuer })}\n`);
});

// Die with the test process: stdin closes when the parent goes away.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
