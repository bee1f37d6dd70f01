// Every Kubernetes API request gets a deadline (src/adapters/request-timeout.ts): against a
// server that accepts connections and never answers, a call fails as a Network error instead
// of holding its worker for ever. Without the deadline the call below never settles.
import { createServer, type Server, type Socket } from "node:net";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyRequestTimeout } from "../../src/adapters/request-timeout.ts";
import { classifyKubeError } from "../../src/adapters/kube-errors.ts";

let server: Server;
let port = 0;
const sockets = new Set<Socket>();

beforeAll(async () => {
  server = createServer((s) => {
    sockets.add(s);
    s.on("error", () => {});
  }); // accept, never answer
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as { port: number }).port;
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

function blackholeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: "u", token: "t" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
  return kc;
}

describe("API request deadline", () => {
  it("fails a request to a server that never answers, as a Network error", async () => {
    const core = applyRequestTimeout(blackholeConfig(), 300).makeApiClient(CoreV1Api);
    const outcome = await Promise.race([
      core.listNamespace().then(
        () => "answered",
        (err: unknown) => classifyKubeError(err).kind,
      ),
      new Promise((r) => setTimeout(() => r("still waiting"), 5_000)),
    ]);
    expect(outcome).toBe("Network");
  });

  it("keeps a signal the caller set", async () => {
    const kc = applyRequestTimeout(blackholeConfig(), 60_000);
    const { RequestContext, HttpMethod } = await import("@kubernetes/client-node");
    const ctx = new RequestContext("http://127.0.0.1/", HttpMethod.GET);
    const own = new AbortController().signal;
    ctx.setSignal(own);
    await kc.applySecurityAuthentication(ctx);
    expect(ctx.getSignal()).toBe(own);
  });
});
