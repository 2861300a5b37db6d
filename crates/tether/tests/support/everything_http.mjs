// Starts @modelcontextprotocol/server-everything's Streamable HTTP transport on loopback only:
// the server itself listens on every interface at $PORT, so `listen` is narrowed to 127.0.0.1
// and an ephemeral port, which is printed as `TETHER_TEST_PORT=<port>` once listening.
//
// argv: the server-everything entry point (dist/index.js).
import http from 'node:http';

const listen = http.Server.prototype.listen;
http.Server.prototype.listen = function (...args) {
  const callback = args.find((a) => typeof a === 'function');
  return listen.call(this, 0, '127.0.0.1', () => {
    process.stdout.write(`TETHER_TEST_PORT=${this.address().port}\n`);
    if (callback) callback();
  });
};
const entry = process.argv[2];
process.argv.splice(2, 1, 'streamableHttp');
await import(entry);
