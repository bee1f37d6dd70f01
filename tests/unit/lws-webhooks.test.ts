// localWebhookConfigurations: the LWS module's webhook manifests, with its kustomize patches applied,
// pointed at a local URL. Fixture files stand in for the module's (same shapes, fewer webhooks).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { LwsBins } from "../../src/testing/bins.ts";
import { localWebhookConfigurations } from "../../src/testing/lws.ts";

const manifests = `---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: mutating-webhook-configuration
webhooks:
- name: mlws.kb.io
  clientConfig:
    service: {name: webhook-service, namespace: system, path: /mutate-lws}
  rules: [{apiGroups: [leaderworkerset.x-k8s.io], apiVersions: [v1], operations: [CREATE], resources: [leaderworkersets]}]
- name: mpod.kb.io
  clientConfig:
    service: {name: webhook-service, namespace: system, path: /mutate--v1-pod}
  rules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: validating-webhook-configuration
webhooks:
- name: vlws.kb.io
  clientConfig:
    service: {name: webhook-service, namespace: system, path: /validate-lws}
`;

const podPatch = `- op: replace
  path: /webhooks/1
  value:
    name: mpod.kb.io
    clientConfig:
      service: {name: webhook-service, namespace: system, path: /mutate--v1-pod}
    objectSelector:
      matchExpressions: [{key: leaderworkerset.sigs.k8s.io/name, operator: Exists}]
`;

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

function fixture(mutatingPatch: string): LwsBins {
  dir = mkdtempSync(join(tmpdir(), "lws-webhooks-"));
  const write = (name: string, text: string) => {
    writeFileSync(join(dir!, name), text);
    return join(dir!, name);
  };
  return {
    dir,
    manager: join(dir, "lws-manager"),
    crds: [],
    webhookManifests: write("manifests.yaml", manifests),
    webhookPatches: [write("mutating-patch.yaml", mutatingPatch), write("validating-patch.yaml", "[]\n")],
  };
}

describe("localWebhookConfigurations", () => {
  it("applies the patches and points every webhook at the local URL with the CA bundle", () => {
    const configs = localWebhookConfigurations(fixture(podPatch), "https://127.0.0.1:9443", "Q0E=");
    expect(configs.map((c) => [c.kind, c.metadata.name])).toEqual([
      ["MutatingWebhookConfiguration", "lws-mutating-webhook-configuration"],
      ["ValidatingWebhookConfiguration", "lws-validating-webhook-configuration"],
    ]);
    const hooks = configs.flatMap((c) => c.webhooks);
    expect(hooks.map((w) => w.clientConfig)).toEqual([
      { url: "https://127.0.0.1:9443/mutate-lws", caBundle: "Q0E=" },
      { url: "https://127.0.0.1:9443/mutate--v1-pod", caBundle: "Q0E=" },
      { url: "https://127.0.0.1:9443/validate-lws", caBundle: "Q0E=" },
    ]);
    // The pod webhook only sees LWS pods (the patch's objectSelector).
    expect(hooks[1]!.objectSelector).toEqual({
      matchExpressions: [{ key: "leaderworkerset.sigs.k8s.io/name", operator: "Exists" }],
    });
    expect(hooks[0]!.objectSelector).toBeUndefined();
  });

  it("refuses a patch it does not understand, naming the file", () => {
    const bins = fixture("- op: add\n  path: /webhooks/-\n  value: {name: x, clientConfig: {}}\n");
    expect(() => localWebhookConfigurations(bins, "https://127.0.0.1:1", "")).toThrow(
      /mutating-patch\.yaml: unsupported patch add \/webhooks\/-/,
    );
  });
});
