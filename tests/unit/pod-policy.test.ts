// The pod-template policy: each risky field is refused with its full path, the
// samples pass, and the allowlists and mode "none" let through what they name.
import { describe, expect, it } from "vitest";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { parseMoEDeployment, type MoEDeploymentSpec } from "../../src/api/index.ts";
import {
  DEFAULT_POD_POLICY,
  checkPodTemplatePolicies,
  isAllowedHostPath,
  type PodTemplatePolicy,
} from "../../src/controllers/moedeployment/pod-policy.ts";
import { setPath } from "../integration/api-invalid-cases.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const samplesDir = join(root, "deploy/samples");

function spec(mutate: (m: Record<string, unknown>) => void = () => {}): MoEDeploymentSpec {
  const m = parse(readFileSync(join(samplesDir, "deepseek-v3.yaml"), "utf8")) as Record<string, unknown>;
  mutate(m);
  const r = parseMoEDeployment(m);
  if (!r.ok) throw new Error("sample does not parse", { cause: r.issues });
  return r.value.spec;
}

const SHARD = "spec.serving.expertShards.template.spec";
const ROUTER = "spec.serving.router.template.spec";

const CASES: { name: string; set: string; value: unknown; path: string; text: RegExp }[] = [
  {
    name: "privileged container",
    set: `${SHARD}.containers[0].securityContext`,
    value: { privileged: true },
    path: `${SHARD}.containers[0].securityContext.privileged`,
    text: /privileged/,
  },
  {
    name: "privilege escalation",
    set: `${ROUTER}.containers[0].securityContext`,
    value: { allowPrivilegeEscalation: true },
    path: `${ROUTER}.containers[0].securityContext.allowPrivilegeEscalation`,
    text: /escalation/,
  },
  {
    name: "privileged init container",
    set: `${SHARD}.initContainers`,
    value: [{ name: "init", image: "busybox", securityContext: { privileged: true } }],
    path: `${SHARD}.initContainers[0].securityContext.privileged`,
    text: /privileged/,
  },
  {
    name: "host network",
    set: `${SHARD}.hostNetwork`,
    value: true,
    path: `${SHARD}.hostNetwork`,
    text: /host namespaces/,
  },
  { name: "host PID", set: `${ROUTER}.hostPID`, value: true, path: `${ROUTER}.hostPID`, text: /host namespaces/ },
  { name: "host IPC", set: `${SHARD}.hostIPC`, value: true, path: `${SHARD}.hostIPC`, text: /host namespaces/ },
  {
    name: "hostPath volume",
    set: `${SHARD}.volumes[1]`,
    value: { name: "root", hostPath: { path: "/" } },
    path: `${SHARD}.volumes[1].hostPath`,
    text: /none allowed/,
  },
  {
    name: "SYS_ADMIN capability",
    set: `${SHARD}.containers[0].securityContext`,
    value: { capabilities: { add: ["NET_BIND_SERVICE", "CAP_SYS_ADMIN"] } },
    path: `${SHARD}.containers[0].securityContext.capabilities.add[1]`,
    text: /CAP_SYS_ADMIN/,
  },
  {
    name: "another ServiceAccount",
    set: `${ROUTER}.serviceAccountName`,
    value: "moe-operator",
    path: `${ROUTER}.serviceAccountName`,
    text: /allowed: default/,
  },
  {
    name: "deprecated serviceAccount field",
    set: `${SHARD}.serviceAccount`,
    value: "admin",
    path: `${SHARD}.serviceAccount`,
    text: /admin/,
  },
];

describe("pod-template policy (restricted)", () => {
  it.each(readdirSync(samplesDir).filter((f) => f.endsWith(".yaml")))("sample %s passes", (file) => {
    const r = parseMoEDeployment(parse(readFileSync(join(samplesDir, file), "utf8")));
    expect(r.ok).toBe(true);
    expect(r.ok ? checkPodTemplatePolicies(r.value.spec, DEFAULT_POD_POLICY) : ["unparsed"]).toEqual([]);
  });

  it.each(CASES.map((c) => [c.name, c] as const))("refuses %s, naming the field", (_n, c) => {
    const violations = checkPodTemplatePolicies(
      spec((m) => setPath(m, c.set, c.value)),
      DEFAULT_POD_POLICY,
    );
    expect(violations.map((v) => v.path)).toEqual([c.path]);
    expect(violations[0]!.message).toMatch(c.text);
  });

  it("allows the safe capabilities, the default ServiceAccount and false flags", () => {
    const s = spec((m) => {
      setPath(m, `${SHARD}.containers[0].securityContext`, {
        privileged: false,
        allowPrivilegeEscalation: false,
        capabilities: { add: ["NET_BIND_SERVICE", "chown"], drop: ["ALL"] },
      });
      setPath(m, `${SHARD}.serviceAccountName`, "default");
      setPath(m, `${SHARD}.hostNetwork`, false);
    });
    expect(checkPodTemplatePolicies(s, DEFAULT_POD_POLICY)).toEqual([]);
  });

  it("the allowlists let through what they name, and only that", () => {
    const policy: PodTemplatePolicy = {
      mode: "restricted",
      allowedServiceAccounts: ["default", "engine"],
      allowedHostPaths: ["/mnt/model-cache"],
      allowedCapabilities: ["IPC_LOCK"],
    };
    const ok = spec((m) => {
      setPath(m, `${SHARD}.serviceAccountName`, "engine");
      setPath(m, `${SHARD}.volumes[1]`, { name: "cache", hostPath: { path: "/mnt/model-cache/deepseek" } });
      setPath(m, `${SHARD}.containers[0].securityContext`, { capabilities: { add: ["IPC_LOCK"] } });
    });
    expect(checkPodTemplatePolicies(ok, policy)).toEqual([]);
    const escape = spec((m) =>
      setPath(m, `${SHARD}.volumes[1]`, { name: "cache", hostPath: { path: "/mnt/model-cache/../../etc" } }),
    );
    expect(checkPodTemplatePolicies(escape, policy).map((v) => v.path)).toEqual([`${SHARD}.volumes[1].hostPath`]);
  });

  it("matches host paths by directory, not by string prefix", () => {
    expect(isAllowedHostPath("/mnt/cache", ["/mnt/cache"])).toBe(true);
    expect(isAllowedHostPath("/mnt/cache/a/", ["/mnt/cache/"])).toBe(true);
    expect(isAllowedHostPath("/mnt/cache-other", ["/mnt/cache"])).toBe(false);
    expect(isAllowedHostPath("relative", ["/"])).toBe(false);
  });

  it("refuses a staging hostPath outside the allowlist, naming spec.prewarm.staging.hostPath", () => {
    const staged = (hostPath: string) =>
      spec((m) =>
        setPath(m, "spec.prewarm.staging", { enabled: true, image: "stager:1", source: "s3://w/ds", hostPath }),
      );
    const violations = checkPodTemplatePolicies(staged("/var/lib/moe-operator/weights"), DEFAULT_POD_POLICY);
    expect(violations.map((v) => v.path)).toEqual(["spec.prewarm.staging.hostPath"]);
    expect(violations[0]!.message).toMatch(/none allowed/);
    const policy = { ...DEFAULT_POD_POLICY, allowedHostPaths: ["/mnt/model-cache"] };
    expect(checkPodTemplatePolicies(staged("/mnt/model-cache/ds"), policy)).toEqual([]);
    expect(checkPodTemplatePolicies(staged("/mnt/other"), policy).map((v) => v.path)).toEqual([
      "spec.prewarm.staging.hostPath",
    ]);
  });

  it("mode none checks nothing", () => {
    const s = spec((m) => setPath(m, `${SHARD}.hostNetwork`, true));
    expect(checkPodTemplatePolicies(s, { ...DEFAULT_POD_POLICY, mode: "none" })).toEqual([]);
  });
});
