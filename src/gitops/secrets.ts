// Reads one Secret by name (a GET, never a list or watch: the operator's RBAC
// names the Secrets it may read). Values come back decoded; nothing is cached.
import type { CoreV1Api } from "@kubernetes/client-node";

export async function readSecretData(
  core: CoreV1Api,
  namespace: string,
  name: string,
): Promise<Record<string, string> | undefined> {
  try {
    const s = await core.readNamespacedSecret({ namespace, name });
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(s.data ?? {})) out[k] = Buffer.from(v, "base64").toString("utf8");
    for (const [k, v] of Object.entries(s.stringData ?? {})) out[k] = v;
    return out;
  } catch (err) {
    const code = (err as { code?: number }).code;
    if (code === 404) return undefined;
    // Callers log only the message: the cause (the client error) carries the request.
    throw new Error(`reading Secret ${namespace}/${name} failed${code ? ` (HTTP ${code})` : ""}`, { cause: err });
  }
}
