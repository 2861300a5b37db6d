// Preloaded (`node --require ./loopback.cjs …`) by the peer tests: the npm test servers listen
// on every interface by default (`app.listen(PORT)`), and tests must stay on loopback. This
// makes every listen-on-a-port in the process bind 127.0.0.1 only. With
// TETHER_ANNOUNCE_PORT=1 in the environment it also prints `TETHER_TEST_PORT=<port>` on stdout
// once listening, so a test can pass PORT=0 and learn the ephemeral port without a race.
"use strict";
const net = require("node:net");

const announce = process.env.TETHER_ANNOUNCE_PORT === "1";
const listen = net.Server.prototype.listen;

function announced(server, callback) {
  if (!announce) return callback;
  return function (...args) {
    process.stdout.write(`TETHER_TEST_PORT=${server.address().port}\n`);
    if (callback) return callback.apply(this, args);
  };
}

net.Server.prototype.listen = function (...args) {
  const [first] = args;
  const isPort =
    typeof first === "number" || (typeof first === "string" && /^\d+$/.test(first));
  if (isPort) {
    const callback = args.find((a) => typeof a === "function");
    return listen.call(this, { port: Number(first), host: "127.0.0.1" }, announced(this, callback));
  }
  if (first && typeof first === "object" && first.port !== undefined) {
    const callback = args.find((a) => typeof a === "function");
    return listen.call(this, { ...first, host: "127.0.0.1" }, announced(this, callback));
  }
  return listen.apply(this, args);
};
