// The Node side of `bench idle-sessions`: opens N idle MCP sessions with the TypeScript SDK's
// `Client` + `StreamableHTTPClientTransport` to one Streamable HTTP server, the way a Node
// gateway would (initialize, then tools/list once), and prints one JSON line with the memory
// they hold, per session.
//
//   node --expose-gc idle_sessions.mjs --url http://127.0.0.1:PORT/mcp --sessions N
//        [--concurrency C] [--idle-ms MS] [--no-standalone-stream]
//
// The bench binary runs it against the same server as Tether's client, in the same run.
// `--no-standalone-stream` answers the SDK's standalone GET event stream with a 405 (the SDK has
// no option for it; a 405 is what a server without that stream says), so the figure can be
// compared with Tether's client in the same mode. Resumption GETs (with Last-Event-ID) pass.

import { readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

// Each request (initialize, tools/list) gives up after this; the whole run is bounded by the
// parent's timeout too.
const REQUEST_TIMEOUT_MS = 30_000;
const CLOSE_TIMEOUT_MS = 5_000;

function parseArgs(argv) {
  const args = { url: undefined, sessions: 1000, concurrency: 32, idleMs: 1000, standaloneStream: true };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      i += 1;
      if (i >= argv.length) throw new Error(`${flag} needs a value`);
      return argv[i];
    };
    const count = (name) => {
      const n = Number.parseInt(value(), 10);
      if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer`);
      return n;
    };
    switch (flag) {
      case '--url': args.url = value(); break;
      case '--sessions': args.sessions = count('--sessions'); break;
      case '--concurrency': args.concurrency = Math.max(1, count('--concurrency')); break;
      case '--idle-ms': args.idleMs = count('--idle-ms'); break;
      case '--no-standalone-stream': args.standaloneStream = false; break;
      default: throw new Error(`unknown argument ${flag}`);
    }
  }
  if (!args.url) throw new Error('--url is required');
  const url = new URL(args.url);
  // A benchmark peer: loopback only.
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) {
    throw new Error('the server must be on loopback');
  }
  return { ...args, url };
}

// Refuses only the standalone stream: a GET without Last-Event-ID.
async function fetchWithoutStandaloneStream(input, init) {
  const headers = new Headers(init?.headers);
  if ((init?.method ?? 'GET') === 'GET' && !headers.has('last-event-id')) {
    return new Response(null, { status: 405 });
  }
  return fetch(input, init);
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function openSession(args, i) {
  const transport = new StreamableHTTPClientTransport(args.url, {
    fetch: args.standaloneStream ? undefined : fetchWithoutStandaloneStream,
  });
  const client = new Client({ name: 'bench-node', version: '0.0.0' }, { capabilities: {} });
  await client.connect(transport, { timeout: REQUEST_TIMEOUT_MS });
  const { tools } = await client.listTools(undefined, { timeout: REQUEST_TIMEOUT_MS });
  if (tools.length === 0) throw new Error(`session ${i}: the server listed no tools`);
  return { client, transport };
}

async function closeSession({ client, transport }) {
  // DELETE the session like Tether's close does, then end the client; both bounded.
  await withTimeout(transport.terminateSession(), CLOSE_TIMEOUT_MS, 'session DELETE').catch(() => {});
  await withTimeout(client.close(), CLOSE_TIMEOUT_MS, 'client close').catch(() => {});
}

// Runs `task(i)` for i in 0..n with at most `concurrency` at once; the first error rejects.
async function pool(n, concurrency, task) {
  const results = new Array(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      results[i] = await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  return results;
}

function openFds() {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return 0;
  }
}

function snapshot() {
  // Twice: a first pass can leave objects that only the second finds unreachable.
  global.gc();
  global.gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, external: m.external + m.arrayBuffers, rss: m.rss, fds: openFds() };
}

async function main() {
  if (typeof global.gc !== 'function') throw new Error('start node with --expose-gc');
  const args = parseArgs(process.argv.slice(2));
  // One session first, not counted: it loads the SDK's modules and undici's first connection.
  const warmUp = await openSession(args, -1);
  await sleep(args.idleMs);
  const before = snapshot();
  const sessions = await pool(args.sessions, args.concurrency, (i) => openSession(args, i));
  await sleep(args.idleMs);
  const after = snapshot();
  const perSession = (key) => (args.sessions === 0 ? 0 : (after[key] - before[key]) / args.sessions);
  const report = {
    client: 'node',
    sdk: '@modelcontextprotocol/sdk',
    node: process.version,
    sessions: args.sessions,
    standalone_stream: args.standaloneStream,
    heap_bytes_per_session: perSession('heap'),
    external_bytes_per_session: perSession('external'),
    rss_bytes_per_session: perSession('rss'),
    fds_per_session: perSession('fds'),
  };
  await pool(sessions.length, args.concurrency, (i) => closeSession(sessions[i]));
  await closeSession(warmUp);
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

main().then(
  // Exit even if a socket or timer is still held by a session that did not close in time.
  () => process.exit(0),
  (error) => {
    process.stderr.write(`idle_sessions.mjs: ${error?.stack ?? error}\n`);
    process.exit(1);
  },
);
