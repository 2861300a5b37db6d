// An agent built on the TypeScript MCP SDK's client: it declares sampling, elicitation (form and
// URL) and roots, answers them like a host would, keeps every notification it is sent, and runs
// the steps it is given against `{base}/mcp`, one after the other.
//
// argv: URL STEPS_JSON; env E2E_HOST_TOKEN. STEPS_JSON is an array of {op, params}; op is one of
// listTools, callTool, listResources, listResourceTemplates, readResource, subscribeResource,
// listPrompts, getPrompt, complete, setLoggingLevel, sleep (params: {ms}).
// Prints one JSON object: {steps: [{op, result} | {op, error}], progress: [...],
// notifications: [{method, params}], asked: [methods the server asked]}.
const { Client } = require('@modelcontextprotocol/sdk/client/index.js');
const {
  StreamableHTTPClientTransport,
} = require('@modelcontextprotocol/sdk/client/streamableHttp.js');
const types = require('@modelcontextprotocol/sdk/types.js');

(async () => {
  const [url, stepsJson] = process.argv.slice(2);
  const steps = JSON.parse(stepsJson);
  const token = process.env.E2E_HOST_TOKEN;
  const client = new Client(
    { name: 'tether-e2e-ts-agent', version: '0.0.0' },
    { capabilities: { sampling: {}, elicitation: { form: {}, url: {} }, roots: { listChanged: false } } },
  );
  const asked = [];
  const progress = [];
  const notifications = [];
  client.setRequestHandler(types.CreateMessageRequestSchema, async () => {
    asked.push('sampling/createMessage');
    return { role: 'assistant', content: { type: 'text', text: 'forty-two' }, model: 'ts-test-model' };
  });
  client.setRequestHandler(types.ElicitRequestSchema, async (request) => {
    asked.push('elicitation/create');
    if (request.params.mode === 'url') {
      return { action: 'accept' };
    }
    // Fills every field the form asks for with a value of its type.
    const content = {};
    const properties = (request.params.requestedSchema || {}).properties || {};
    for (const [key, field] of Object.entries(properties)) {
      if (field.type === 'boolean') content[key] = true;
      else if (field.type === 'number' || field.type === 'integer') content[key] = 7;
      else if (Array.isArray(field.enum)) content[key] = field.enum[0];
      else if (field.oneOf) content[key] = field.oneOf[0].const;
      else if (field.type === 'array') content[key] = [];
      else if (field.format === 'email') content[key] = 'ada@example.com';
      else if (field.format === 'date') content[key] = '2026-11-29';
      else if (field.format === 'uri') content[key] = 'https://example.com';
      else if (field.format === 'date-time') content[key] = '2026-11-29T00:00:00Z';
      else content[key] = 'Ada';
    }
    return { action: 'accept', content };
  });
  client.setRequestHandler(types.ListRootsRequestSchema, async () => {
    asked.push('roots/list');
    return { roots: [{ uri: 'file:///work/ts-project', name: 'ts-project' }] };
  });
  for (const [method, schema] of [
    ['notifications/message', types.LoggingMessageNotificationSchema],
    ['notifications/tools/list_changed', types.ToolListChangedNotificationSchema],
    ['notifications/resources/updated', types.ResourceUpdatedNotificationSchema],
    ['notifications/resources/list_changed', types.ResourceListChangedNotificationSchema],
    ['notifications/prompts/list_changed', types.PromptListChangedNotificationSchema],
  ]) {
    client.setNotificationHandler(schema, (n) => notifications.push({ method, params: n.params }));
  }
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
  });
  await client.connect(transport);
  const done = [];
  const options = { timeout: 30000 };
  for (const { op, params } of steps) {
    try {
      let result;
      switch (op) {
        case 'listTools': result = await client.listTools(params, options); break;
        case 'callTool':
          result = await client.callTool(params, undefined, {
            ...options,
            onprogress: (p) => progress.push(p),
          });
          break;
        case 'listResources': result = await client.listResources(params, options); break;
        case 'listResourceTemplates': result = await client.listResourceTemplates(params, options); break;
        case 'readResource': result = await client.readResource(params, options); break;
        case 'subscribeResource': result = await client.subscribeResource(params, options); break;
        case 'listPrompts': result = await client.listPrompts(params, options); break;
        case 'getPrompt': result = await client.getPrompt(params, options); break;
        case 'complete': result = await client.complete(params, options); break;
        case 'setLoggingLevel': result = await client.setLoggingLevel(params.level, options); break;
        case 'sleep': await new Promise((r) => setTimeout(r, params.ms)); result = {}; break;
        default: throw new Error(`unknown step ${op}`);
      }
      done.push({ op, result });
    } catch (err) {
      done.push({ op, error: { code: err.code, message: String(err.message || err) } });
    }
  }
  process.stdout.write(JSON.stringify({ steps: done, progress, notifications, asked }) + '\n');
  await client.close();
})().catch((err) => {
  console.error(String((err && err.stack) || err));
  process.exit(1);
});
