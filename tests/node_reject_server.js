// Node.js `https` with requestCert and rejectUnauthorized: on TLS 1.2 it closes the
// connection right after an untrusted client certificate, without an alert.
// Usage: node tests/node_reject_server.js PKI_DIR; prints {"port": N}.
"use strict";
const fs = require("fs");
const https = require("https");
const path = require("path");

const pki = process.argv[2];
const read = (name) => fs.readFileSync(path.join(pki, name));
const server = https.createServer(
  {
    cert: Buffer.concat([read("server-leaf.pem"), read("intermediate.pem")]),
    key: read("server.key"),
    ca: read("ca.pem"),
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: "TLSv1.2",
    maxVersion: "TLSv1.3",
  },
  (request, response) => {
    response.writeHead(200, { "Content-Type": "text/plain" });
    response.end("ok\n");
  },
);
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + "\n");
});
process.on("SIGTERM", () => process.exit(0));
