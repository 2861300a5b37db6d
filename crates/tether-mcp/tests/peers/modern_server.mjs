// A Streamable HTTP MCP server built on the v2 TypeScript SDK (@modelcontextprotocol/server 2.4.0),
// used as an upstream peer by tether-mcp's integration tests (MCP revision 2026-07-28).
//
//   node modern_server.mjs [mode] [endpoint-path]
//
// Listens on 127.0.0.1 with an ephemeral port, prints exactly one line
// `{"url":"http://127.0.0.1:PORT/mcp"}` on stdout once listening, and exits when stdin closes.
// Diagnostics go to stderr only.
//
// Modes (argv[2]):
//   modern          (default) 2026-07-28 only, stateless. The SDK's `createMcpHandler(factory,
//                   { legacy: 'reject' })`: an `initialize` (or any request without the per-request
//                   `_meta` envelope) is refused by the SDK itself with HTTP 400 and JSON-RPC -32022
//                   naming the supported versions (["2026-07-28"]); GET/DELETE get 405.
//   dual            2026-07-28 stateless requests AND legacy (2025-11-25) `initialize` sessions with
//                   `Mcp-Session-Id` on the same endpoint. Built the way the SDK documents it:
//                   `isLegacyRequest(request)` routes 2025-era traffic to a sessionful
//                   `WebStandardStreamableHTTPServerTransport` (one per session), everything else
//                   goes to a strict `createMcpHandler(factory, { legacy: 'reject' })`.
//   dual-stateless  the SDK default `createMcpHandler(factory)` (legacy: 'stateless'): 2025-era
//                   requests, `initialize` included, are each served by a fresh instance with no
//                   session id; GET/DELETE get 405.
//   stdio           2026-07-28 only, over stdio (the SDK's `serveStdio(factory, { legacy: 'reject' })`):
//                   no URL line is printed, stdout is the protocol channel.
// Endpoint path (argv[3]): default `/mcp`.
//
// Besides the MCP endpoint: `GET /stats` returns {"methods": {method: count}, "initialize": count,
// "posts": count} counted from every JSON-RPC message POSTed to the endpoint (requests and
// notifications, batches counted per element), whatever the SDK then answered.
//
// Tools: echo {text}, add {a,b}, route {region (x-mcp-header Region), text}, progress {steps},
// weigh {grams (x-mcp-header on a number: invalid)}, ask (input-required form elicitation {name}),
// whoami (what `_meta` and which standard headers this request arrived with).
// Resource: notes://readme (text). Prompt: greet {name}.
// No cache hints are configured: results carry the SDK defaults (2026-07-28: ttlMs 0 / private).

import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { AsyncLocalStorage } from 'node:async_hooks';
import * as z from 'zod';
import {
    McpServer,
    WebStandardStreamableHTTPServerTransport,
    createMcpHandler,
    inputRequired,
    inputResponse,
    isInitializeRequest,
    isLegacyRequest,
    PROTOCOL_VERSION_META_KEY,
    CLIENT_INFO_META_KEY,
    CLIENT_CAPABILITIES_META_KEY
} from '@modelcontextprotocol/server';

const MODES = new Set(['modern', 'dual', 'dual-stateless', 'stdio']);
const mode = process.argv[2] || 'modern';
if (!MODES.has(mode)) {
    process.stderr.write(`modern_server: unknown mode ${JSON.stringify(mode)} (expected one of ${[...MODES].join(', ')})\n`);
    process.exit(2);
}
let endpoint = process.argv[3] || '/mcp';
if (!endpoint.startsWith('/')) endpoint = `/${endpoint}`;
if (endpoint.length > 1 && endpoint.endsWith('/')) endpoint = endpoint.slice(0, -1);

const MAX_BODY = 4 * 1024 * 1024;
const log = (...parts) => process.stderr.write(`modern_server[${mode}]: ${parts.join(' ')}\n`);

// ---------------------------------------------------------------------------------------------
// Request accounting and header capture

const stats = { methods: {}, initialize: 0, posts: 0 };
function countMessages(body) {
    const messages = Array.isArray(body) ? body : [body];
    for (const m of messages) {
        if (m === null || typeof m !== 'object' || typeof m.method !== 'string') continue;
        stats.methods[m.method] = (stats.methods[m.method] ?? 0) + 1;
        if (m.method === 'initialize') stats.initialize += 1;
    }
}

// The HTTP request being served, for handlers whose context lacks `ctx.http.req`.
const currentHttp = new AsyncLocalStorage();

const STANDARD_HEADERS = ['mcp-protocol-version', 'mcp-method', 'mcp-name', 'mcp-session-id', 'authorization'];
function pickHeaders(headers) {
    const out = {};
    if (!headers) return out;
    for (const name of STANDARD_HEADERS) {
        const value = typeof headers.get === 'function' ? headers.get(name) : headers[name];
        if (value !== null && value !== undefined) out[name] = name === 'authorization' ? redact(value) : value;
    }
    return out;
}
function redact(value) {
    const [scheme] = String(value).split(' ');
    return `${scheme} <redacted>`;
}

// ---------------------------------------------------------------------------------------------
// The MCP surface: one factory serves every era.

const SERVER_INFO = { name: 'tether-modern-peer', version: '2.4.0-peer.1' };
const README = 'Tether modern peer: a 2026-07-28 MCP server used by tether-mcp integration tests.\n';
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

function buildServer({ era }) {
    const server = new McpServer(SERVER_INFO, {
        instructions: 'Test peer for Tether. Tools: echo, add, progress, ask, whoami.'
    });

    server.registerTool(
        'echo',
        { description: 'Echo the text back, prefixed with "echo: ".', inputSchema: z.object({ text: z.string() }) },
        async ({ text }) => ({ content: [{ type: 'text', text: `echo: ${text}` }] })
    );

    server.registerTool(
        'add',
        { description: 'Add two numbers.', inputSchema: z.object({ a: z.number(), b: z.number() }) },
        async ({ a, b }) => ({ content: [{ type: 'text', text: String(a + b) }] })
    );

    // Its `region` is annotated `x-mcp-header` (SEP-2243): the SDK refuses a call that does not
    // repeat it in `Mcp-Param-Region` (-32020).
    server.registerTool(
        'route',
        {
            description: 'Say where the text was routed; `region` travels as Mcp-Param-Region too.',
            inputSchema: z.object({
                region: z.string().meta({ 'x-mcp-header': 'Region' }),
                text: z.string()
            })
        },
        async ({ region, text }) => ({ content: [{ type: 'text', text: `${text} via ${region}` }] })
    );

    // An annotation the revision does not allow (on a `number`): clients leave the tool out.
    server.registerTool(
        'weigh',
        {
            description: 'Not callable by a conforming client: x-mcp-header on a number.',
            inputSchema: z.object({ grams: z.number().meta({ 'x-mcp-header': 'Grams' }) })
        },
        async ({ grams }) => ({ content: [{ type: 'text', text: `${grams} g` }] })
    );

    server.registerTool(
        'progress',
        {
            description: "Send `steps` notifications/progress under the request's progressToken, then finish.",
            inputSchema: z.object({ steps: z.number().int().min(0).max(100) })
        },
        async ({ steps }, ctx) => {
            const token = ctx.mcpReq._meta?.progressToken;
            for (let i = 1; i <= steps; i++) {
                if (token !== undefined) {
                    await ctx.mcpReq.notify({
                        method: 'notifications/progress',
                        params: { progressToken: token, progress: i, total: steps, message: `step ${i}/${steps}` }
                    });
                }
                await sleep(5);
            }
            return { content: [{ type: 'text', text: `done after ${steps} steps` }] };
        }
    );

    server.registerTool(
        'ask',
        { description: 'Ask the user for their name (input-required form elicitation), then greet them.' },
        async ctx => {
            const answer = inputResponse(ctx.mcpReq.inputResponses, 'name');
            if (answer.kind === 'elicit' && answer.action === 'accept' && typeof answer.content?.name === 'string') {
                return { content: [{ type: 'text', text: `hello ${answer.content.name}` }] };
            }
            if (answer.kind === 'elicit' && answer.action !== 'accept') {
                return { content: [{ type: 'text', text: `no name given (${answer.action})` }], isError: true };
            }
            return inputRequired({
                inputRequests: {
                    name: inputRequired.elicit({
                        mode: 'form',
                        message: 'What is your name?',
                        requestedSchema: {
                            type: 'object',
                            properties: { name: { type: 'string', description: 'Your name' } },
                            required: ['name']
                        }
                    })
                }
            });
        }
    );

    server.registerTool(
        'whoami',
        { description: 'Report the protocol version, clientInfo and standard HTTP headers this request carried.' },
        async ctx => {
            const envelope = ctx.mcpReq.envelope ?? {};
            const req = ctx.http?.req;
            const fallback = currentHttp.getStore();
            const report = {
                era,
                protocolVersion:
                    envelope[PROTOCOL_VERSION_META_KEY] ?? (era === 'legacy' ? server.server.getNegotiatedProtocolVersion() ?? null : null),
                clientInfo: envelope[CLIENT_INFO_META_KEY] ?? (era === 'legacy' ? server.server.getClientVersion() ?? null : null),
                clientCapabilities:
                    envelope[CLIENT_CAPABILITIES_META_KEY] ?? (era === 'legacy' ? server.server.getClientCapabilities() ?? null : null),
                metaSource: ctx.mcpReq.envelope ? 'envelope' : 'initialize',
                headers: pickHeaders(req ? req.headers : fallback?.headers),
                headersSource: req ? 'ctx.http.req' : fallback ? 'middleware' : 'none',
                sessionId: ctx.sessionId ?? null
            };
            return { content: [{ type: 'text', text: JSON.stringify(report) }] };
        }
    );

    server.registerResource(
        'readme',
        'notes://readme',
        { title: 'README', description: 'A short text note.', mimeType: 'text/plain' },
        async uri => ({ contents: [{ uri: uri.href, mimeType: 'text/plain', text: README }] })
    );

    server.registerPrompt(
        'greet',
        { description: 'Greet someone by name.', argsSchema: z.object({ name: z.string() }) },
        async ({ name }) => ({
            messages: [{ role: 'user', content: { type: 'text', text: `Please greet ${name} warmly.` } }]
        })
    );

    return server;
}

// ---------------------------------------------------------------------------------------------
// Handlers per mode (all fetch-shaped: Request -> Promise<Response>)

const onerror = error => log('sdk:', error?.message ?? String(error));

function jsonRpcError(status, code, message, id = null) {
    return Response.json({ jsonrpc: '2.0', error: { code, message }, id }, { status });
}

// Legacy (2025-era) sessions for `dual`: one sessionful transport + server per initialize.
const sessions = new Map();
async function legacySessionFetch(request) {
    const sessionId = request.headers.get('mcp-session-id');
    if (sessionId) {
        const session = sessions.get(sessionId);
        if (!session) return jsonRpcError(404, -32001, 'Session not found');
        return session.transport.handleRequest(request);
    }
    if (request.method === 'POST') {
        let body;
        try {
            body = await request.clone().json();
        } catch {
            return jsonRpcError(400, -32700, 'Parse error');
        }
        if (isInitializeRequest(body)) {
            const transport = new WebStandardStreamableHTTPServerTransport({
                sessionIdGenerator: () => randomUUID(),
                onsessioninitialized: sid => {
                    sessions.set(sid, { transport, server });
                    log('legacy session opened', sid);
                },
                onsessionclosed: sid => {
                    sessions.delete(sid);
                    log('legacy session closed', sid);
                }
            });
            transport.onclose = () => {
                if (transport.sessionId) sessions.delete(transport.sessionId);
            };
            const server = buildServer({ era: 'legacy' });
            await server.connect(transport);
            return transport.handleRequest(request, { parsedBody: body });
        }
    }
    return jsonRpcError(400, -32000, 'Bad Request: No valid session ID provided');
}

if (mode === 'stdio') {
    const { serveStdio } = await import('@modelcontextprotocol/server/stdio');
    serveStdio(buildServer, { legacy: 'reject', onerror });
}

let mcpFetch;
let closeHandler = async () => {};
if (mode === 'modern') {
    const handler = createMcpHandler(buildServer, { legacy: 'reject', onerror });
    mcpFetch = request => handler.fetch(request);
    closeHandler = () => handler.close();
} else if (mode === 'dual-stateless') {
    const handler = createMcpHandler(buildServer, { legacy: 'stateless', onerror });
    mcpFetch = request => handler.fetch(request);
    closeHandler = () => handler.close();
} else {
    const modern = createMcpHandler(buildServer, { legacy: 'reject', onerror });
    mcpFetch = async request => ((await isLegacyRequest(request)) ? legacySessionFetch(request) : modern.fetch(request));
    closeHandler = async () => {
        await modern.close();
        await Promise.all([...sessions.values()].map(s => s.transport.close().catch(() => {})));
    };
}

// ---------------------------------------------------------------------------------------------
// node:http <-> fetch adapter

function readBody(req) {
    return new Promise((resolve, reject) => {
        const chunks = [];
        let size = 0;
        req.on('data', chunk => {
            size += chunk.length;
            if (size > MAX_BODY) {
                reject(Object.assign(new Error('body too large'), { tooLarge: true }));
                req.destroy();
                return;
            }
            chunks.push(chunk);
        });
        req.on('end', () => resolve(Buffer.concat(chunks)));
        req.on('error', reject);
    });
}

async function writeResponse(res, response) {
    const headers = {};
    response.headers.forEach((value, name) => {
        headers[name] = value;
    });
    const streaming = (response.headers.get('content-type') ?? '').startsWith('text/event-stream');
    if (!response.body || !streaming) {
        // Plain JSON (or empty) answers go out with a Content-Length, SSE streams chunked.
        const bytes = response.body ? Buffer.from(await response.arrayBuffer()) : Buffer.alloc(0);
        if (response.status !== 204 && response.status !== 304) headers['content-length'] = String(bytes.length);
        res.writeHead(response.status, headers);
        res.end(bytes);
        return;
    }
    res.writeHead(response.status, headers);
    const reader = response.body.getReader();
    res.on('close', () => reader.cancel().catch(() => {}));
    try {
        for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            res.write(value);
        }
    } catch {
        // client went away or the stream was cancelled
    }
    res.end();
}

const httpServer = http.createServer(async (req, res) => {
    try {
        const url = new URL(req.url, `http://${req.headers.host ?? '127.0.0.1'}`);
        if (url.pathname === '/stats' && req.method === 'GET') {
            res.writeHead(200, { 'content-type': 'application/json' });
            res.end(JSON.stringify(stats));
            return;
        }
        if (url.pathname !== endpoint) {
            res.writeHead(404, { 'content-type': 'text/plain' });
            res.end('not found\n');
            return;
        }

        let body;
        if (req.method !== 'GET' && req.method !== 'HEAD') body = await readBody(req);
        if (req.method === 'POST') {
            stats.posts += 1;
            try {
                countMessages(JSON.parse(body.toString('utf8')));
            } catch {
                // not JSON: the SDK answers it
            }
        }

        const headers = new Headers();
        for (let i = 0; i < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i], req.rawHeaders[i + 1]);
        const abort = new AbortController();
        res.on('close', () => {
            if (!res.writableFinished) abort.abort();
        });
        const request = new Request(url, {
            method: req.method,
            headers,
            body: body && body.length > 0 ? body : undefined,
            signal: abort.signal
        });

        const response = await currentHttp.run({ headers: request.headers }, () => mcpFetch(request));
        await writeResponse(res, response);
    } catch (error) {
        log('http error:', error?.stack ?? String(error));
        if (!res.headersSent) {
            const status = error?.tooLarge ? 413 : 500;
            res.writeHead(status, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: status === 413 ? -32000 : -32603, message: String(error?.message ?? error) }, id: null }));
        } else {
            res.end();
        }
    }
});

if (mode !== 'stdio') httpServer.listen({ host: '127.0.0.1', port: 0 }, () => {
    const { port } = httpServer.address();
    process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}${endpoint}` })}\n`);
    log(`listening on 127.0.0.1:${port}${endpoint}`);
});

let shuttingDown = false;
async function shutdown() {
    if (shuttingDown) return;
    shuttingDown = true;
    setTimeout(() => process.exit(0), 1000).unref();
    httpServer.close();
    httpServer.closeAllConnections?.();
    await closeHandler().catch(() => {});
    process.exit(0);
}
process.stdin.on('end', shutdown);
process.stdin.on('close', shutdown);
process.stdin.on('error', shutdown);
process.stdin.resume();
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
