// A small Express service reporting to errlearn with the official @sentry/node SDK, as docs/sentry.md shows.
// Usage: node sentry_express_app.js <dsn>. Prints one JSON line with what it did, then exits.
"use strict";

const Sentry = require("@sentry/node");

Sentry.init({
  dsn: process.argv[2],
  release: "collab-engine@2.3.4",
  environment: "staging",
  serverName: "collab-1",
  tracesSampleRate: 0,
});

const express = require("express");

// The seed's helper: report a collaboration error with what the session was doing.
function captureCollaborationError(error, context) {
  return Sentry.captureException(error, {
    tags: { component: "collaboration" },
    extra: { documentId: context.documentId, userId: context.userId, operation: context.operation, token: context.token },
  });
}

function applyOperation(doc, op) {
  return doc.content.insert(op.position, op.text); // doc.content is undefined: a TypeError
}

const app = express();
app.post("/documents/:id/operations", (req, res) => {
  applyOperation({ id: req.params.id }, { position: 3, text: "hi" });
  res.json({ ok: true });
});
Sentry.setupExpressErrorHandler(app);
app.use((err, req, res, next) => {
  res.status(500).json({ error: err.message });
});

async function main() {
  const server = app.listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  const base = `http://127.0.0.1:${server.address().port}`;
  const statuses = [];
  for (const id of ["doc-1", "doc-2", "doc-3"]) {
    const resp = await fetch(`${base}/documents/${id}/operations`, { method: "POST" });
    statuses.push(resp.status);
  }
  let collabId = null;
  try {
    JSON.parse("{not json");
  } catch (err) {
    collabId = captureCollaborationError(err, {
      documentId: "doc-77",
      userId: "user-9",
      operation: "merge",
      token: "sk_live_0123456789abcdefghij",
    });
  }
  const flushed = await Sentry.flush(15000);
  server.close();
  process.stdout.write(JSON.stringify({ statuses, collabId, flushed }) + "\n");
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack) + "\n");
  process.exit(1);
});
