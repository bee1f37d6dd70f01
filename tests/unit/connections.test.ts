// Kubernetes API requests share one connection pool (src/adapters/connections.ts): against a
// TLS server that requires a client certificate, 20 sequential calls reuse one or two keep-alive
// TLS connections (undici may open a second while the first is being released), not one each
// (@kubernetes/client-node 2.x makes a new agent, hence a new connection and TLS context, per
// request: 20 here). A changed client certificate gets a new pool, and the calls still succeed.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer, type Server } from "node:https";
import type { TLSSocket } from "node:tls";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClientCert, createPki, type Pki } from "../../src/testing/pki.ts";
import { shareConnections } from "../../src/adapters/connections.ts";

let dir: string;
let pki: Pki;
let server: Server;
let port = 0;
let connections = 0;
const clients: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "moe-connections-"));
  pki = createPki(dir);
  server = createServer(
    {
      cert: readFileSync(pki.servingCert),
      key: readFileSync(pki.servingKey),
      ca: readFileSync(pki.caCert),
      requestCert: true,
      rejectUnauthorized: true,
    },
    (req, res) => {
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      clients.push(String(peer.subject?.CN ?? ""));
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name: "default" } }));
    },
  );
  server.on("secureConnection", () => connections++);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as { port: number }).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

function config(cert: string, key: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server: `https://127.0.0.1:${port}`, caData: b64(pki.caCert) }],
    users: [{ name: "u", certData: b64(cert), keyData: b64(key) }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
  return kc;
}
const b64 = (file: string) => readFileSync(file).toString("base64");

describe("shared API connections", () => {
  it("sends 20 requests over at most two TLS connections", async () => {
    connections = 0;
    const core = shareConnections(config(pki.adminCert, pki.adminKey)).makeApiClient(CoreV1Api);
    for (let i = 0; i < 20; i++) expect((await core.readNamespace({ name: "default" })).metadata?.name).toBe("default");
    expect(connections).toBeLessThanOrEqual(2);
  });

  it("connects anew with a changed client certificate, and the calls succeed", async () => {
    connections = 0;
    clients.length = 0;
    const kc = shareConnections(config(pki.adminCert, pki.adminKey));
    const core = kc.makeApiClient(CoreV1Api);
    await core.readNamespace({ name: "default" });
    await core.readNamespace({ name: "default" });
    const rotated = createClientCert(pki, "rotated", []);
    const user = kc.getCurrentUser() as { certData?: string; keyData?: string };
    user.certData = b64(rotated.cert);
    user.keyData = b64(rotated.key);
    await core.readNamespace({ name: "default" });
    await core.readNamespace({ name: "default" });
    expect(clients).toEqual(["moe-admin", "moe-admin", "rotated", "rotated"]);
  });

  it("is idempotent", () => {
    const kc = config(pki.adminCert, pki.adminKey);
    expect(shareConnections(shareConnections(kc))).toBe(kc);
  });
});
