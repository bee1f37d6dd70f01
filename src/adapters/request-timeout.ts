// A deadline on every Kubernetes API request the operator makes (not on watches).
// @kubernetes/client-node 2.x has no per-client request timeout; every generated API call
// goes through KubeConfig.applySecurityAuthentication(context) before fetch, and fetch uses
// the context's signal. So the deadline is set there, for requests that have no signal of
// their own. Watches build their own AbortController and are untouched (their idle timeout
// is the informer's business). A request past its deadline fails with a TimeoutError, which
// classifyKubeError maps to "Network": the reconcile fails and is retried with backoff, and
// the worker is free again, so one hung call cannot hold a worker for ever.
import type { KubeConfig } from "@kubernetes/client-node";

export function applyRequestTimeout(kc: KubeConfig, timeoutMs: number): KubeConfig {
  const authenticate = kc.applySecurityAuthentication.bind(kc);
  kc.applySecurityAuthentication = async (context) => {
    await authenticate(context);
    if (context.getSignal() === undefined) context.setSignal(AbortSignal.timeout(timeoutMs));
  };
  return kc;
}
