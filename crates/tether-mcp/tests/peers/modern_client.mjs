// An MCP client built on the v2 TypeScript SDK (@modelcontextprotocol/client 2.4.0) that speaks
// the 2026-07-28 wire: `server/discover` at connect (pinned, no `initialize`, no fallback), then
// per-request `_meta` and the standard headers on every request. Used by tether-mcp's
// integration tests as a downstream agent.
//
//   node modern_client.mjs URL STEPS_JSON
//
// STEPS_JSON is a JSON array of {op, params?, options?}; op is one of discover, listTools, callTool,
// listResources, readResource, listPrompts, getPrompt. `options.cacheMode` ('use' | 'refresh' |
// 'bypass') applies to the cacheable ops and defaults to 'refresh' so that every step goes on the
// wire. If $E2E_HOST_TOKEN is set it is sent as `Authorization: Bearer …` on every HTTP request.
// $MODERN_CLIENT_CAPABILITIES (JSON) replaces the capabilities it declares (default: form
// elicitation).
//
// Prints exactly one JSON object on stdout:
//   {"version": <negotiated protocol version>, "steps": [{op, result} | {op, error: {code, message, data?}}]}
// callTool steps additionally carry `progress` (the notifications/progress params received, when
// any) and `elicitations` (the elicitation requests answered, when any). Every step carries
// `contentTypes`: the Content-Type of each HTTP answer it took. Input-required
// elicitations are answered with {action: "accept", content: {name: "Ada"}}.
// If connecting fails: {"version": null, "error": {...}, "steps": []} and exit code 1.

import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

const PROTOCOL_VERSION = '2026-07-28';
const REQUEST_TIMEOUT_MS = 30_000;
const WATCHDOG_MS = 120_000;

const [url, stepsArg] = process.argv.slice(2);
if (!url) {
    process.stderr.write('usage: node modern_client.mjs URL [STEPS_JSON]\n');
    process.exit(2);
}
let steps;
try {
    steps = JSON.parse(stepsArg ?? '[]');
    if (!Array.isArray(steps)) throw new Error('STEPS_JSON must be a JSON array');
} catch (error) {
    process.stderr.write(`modern_client: bad steps: ${error.message}\n`);
    process.exit(2);
}

setTimeout(() => {
    process.stderr.write(`modern_client: watchdog fired after ${WATCHDOG_MS} ms\n`);
    process.exit(3);
}, WATCHDOG_MS).unref();

function errorOf(error) {
    const out = {
        code: error?.code ?? null,
        message: String(error?.message ?? error)
    };
    if (error?.data !== undefined) out.data = error.data;
    return out;
}

const DECLARED = process.env.MODERN_CLIENT_CAPABILITIES
    ? JSON.parse(process.env.MODERN_CLIENT_CAPABILITIES)
    : { elicitation: { form: {} } };
const client = new Client(
    { name: 'tether-modern-client', version: '2.4.0-peer.1' },
    {
        capabilities: DECLARED,
        versionNegotiation: { mode: { pin: PROTOCOL_VERSION } }
    }
);
client.onerror = error => process.stderr.write(`modern_client: ${error?.message ?? error}\n`);

// Answers the embedded `elicitation/create` requests of input-required results (the SDK's
// auto-fulfilment driver routes them here, then retries the call with `inputResponses`).
let elicitations = [];
if (DECLARED.elicitation) {
    client.setRequestHandler('elicitation/create', async request => {
        elicitations.push(request.params);
        return { action: 'accept', content: { name: 'Ada' } };
    });
}

const headers = {};
if (process.env.E2E_HOST_TOKEN) headers.Authorization = `Bearer ${process.env.E2E_HOST_TOKEN}`;
// The Content-Type of every answer, so that a test can tell a JSON answer from an event stream.
let contentTypes = [];
const recordingFetch = async (input, init) => {
    const response = await fetch(input, init);
    contentTypes.push(response.headers.get('content-type'));
    return response;
};
const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers },
    fetch: recordingFetch
});

try {
    await client.connect(transport, { timeout: REQUEST_TIMEOUT_MS });
} catch (error) {
    process.stdout.write(`${JSON.stringify({ version: null, error: errorOf(error), steps: [] })}\n`);
    await client.close().catch(() => {});
    process.exit(1);
}

const results = [];
for (const step of steps) {
    const op = step?.op;
    const params = step?.params ?? {};
    const base = { timeout: REQUEST_TIMEOUT_MS };
    const cacheable = { ...base, cacheMode: step?.options?.cacheMode ?? 'refresh' };
    const progress = [];
    elicitations = [];
    contentTypes = [];
    try {
        let result;
        switch (op) {
            case 'discover':
                result = await client.discover(base);
                break;
            case 'listTools':
                result = await client.listTools(params, cacheable);
                break;
            case 'callTool':
                result = await client.callTool(params, {
                    ...base,
                    onprogress: p => progress.push(p),
                    resetTimeoutOnProgress: true,
                    maxTotalTimeout: REQUEST_TIMEOUT_MS * 2
                });
                break;
            case 'listResources':
                result = await client.listResources(params, cacheable);
                break;
            case 'readResource':
                result = await client.readResource(params, cacheable);
                break;
            case 'listPrompts':
                result = await client.listPrompts(params, cacheable);
                break;
            case 'getPrompt':
                result = await client.getPrompt(params, base);
                break;
            default:
                throw Object.assign(new Error(`unknown op ${JSON.stringify(op)}`), { code: 'UnknownOp' });
        }
        const entry = { op, result, contentTypes };
        if (progress.length > 0) entry.progress = progress;
        if (elicitations.length > 0) entry.elicitations = elicitations;
        results.push(entry);
    } catch (error) {
        const entry = { op, error: errorOf(error), contentTypes };
        if (progress.length > 0) entry.progress = progress;
        if (elicitations.length > 0) entry.elicitations = elicitations;
        results.push(entry);
    }
}

process.stdout.write(`${JSON.stringify({ version: client.getNegotiatedProtocolVersion() ?? null, steps: results })}\n`);
await client.close().catch(() => {});
process.exit(0);
