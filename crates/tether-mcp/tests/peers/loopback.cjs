// Preloaded (`node --require ./loopback.cjs …`) by tether-mcp's peer tests: the npm test
// servers listen on every interface by default (`app.listen(PORT)`), and tests must stay on
// loopback. This makes every listen-on-a-port in the process bind 127.0.0.1 only.
"use strict";
const net = require("node:net");

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const [first] = args;
  const isPort =
    typeof first === "number" || (typeof first === "string" && /^\d+$/.test(first));
  if (isPort) {
    const callback = args.find((a) => typeof a === "function");
    return listen.call(this, { port: Number(first), host: "127.0.0.1" }, callback);
  }
  if (first && typeof first === "object" && first.port !== undefined) {
    return listen.call(this, { ...first, host: "127.0.0.1" }, ...args.slice(1));
  }
  return listen.apply(this, args);
};
