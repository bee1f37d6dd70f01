// One connection pool for every Kubernetes API request and watch of a KubeConfig.
// @kubernetes/client-node 2.x builds a new undici Agent in KubeConfig.applySecurityAuthentication
// for every request (its private createDispatcher), so each request opened its own TLS
// connection with its own TLS context (CA, client certificate and key parsed again). That
// native memory (OpenSSL, outside the V8 heap) went back only when V8 happened to collect the
// small agent objects: at rest (a GET per heat ConfigMap per refresh, a lease GET and PUT every
// 2 s) it was most of the operator's RSS outside the heap, and every request paid a TLS
// handshake. Here createDispatcher returns one agent per set of connection options (server,
// TLS material): requests reuse its keep-alive connections. When the options change (a
// rotated client certificate file, an exec plugin's new certificate), a new agent is made and
// the old one is closed once its requests (watches included) have ended.
import { createHash } from "node:crypto";
import type { KubeConfig } from "@kubernetes/client-node";

type CreateDispatcher = (cluster: unknown, agentOptions: unknown) => unknown;
interface Closable {
  close?: () => Promise<void>;
}

const shared = Symbol("moe-operator.sharedConnections");

/** Makes kc's requests and watches share one connection pool; returns kc. Idempotent. */
export function shareConnections(kc: KubeConfig): KubeConfig {
  const k = kc as unknown as { createDispatcher?: CreateDispatcher; [shared]?: true };
  if (k[shared]) return kc;
  if (typeof k.createDispatcher !== "function") {
    // The library changed: fail at start-up rather than silently open a connection per request.
    throw new Error("@kubernetes/client-node KubeConfig has no createDispatcher; connection sharing needs updating");
  }
  const create = k.createDispatcher.bind(kc);
  let current: { key: string; dispatcher: unknown } | undefined;
  k.createDispatcher = (cluster, agentOptions) => {
    // The options the library would build the agent from (server's TLS material, proxy), hashed.
    const options = kc.createDispatcherOptions(cluster as never, agentOptions as never);
    const key = createHash("sha256")
      .update(JSON.stringify([(cluster as { server?: string } | null)?.server, options]))
      .digest("hex");
    if (current?.key === key) return current.dispatcher;
    const previous = current?.dispatcher as Closable | undefined;
    current = { key, dispatcher: create(cluster, agentOptions) };
    void previous?.close?.().catch(() => {});
    return current.dispatcher;
  };
  k[shared] = true;
  return kc;
}
