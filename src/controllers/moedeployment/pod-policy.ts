// The pod-template policy (issue 20): creating a MoEDeployment must not be a way
// to create arbitrary pods with the operator's rights. With mode "restricted",
// shard and router templates may not ask for privileged containers, privilege
// escalation, host namespaces, hostPath volumes outside an allowlist, Linux
// capabilities beyond a safe set, or a ServiceAccount outside an allowlist; nor may
// spec.prewarm.staging.hostPath (the staging Jobs' volume) be outside the allowlist.
// Pure: a template in, a list of violations (each naming its field) out.
import type { MoEDeploymentSpec, PodTemplate } from "../../api/schema.ts";

export type PodPolicyMode = "restricted" | "none";

export interface PodTemplatePolicy {
  mode: PodPolicyMode;
  /** ServiceAccounts the pods may run as (an unset serviceAccountName means "default"). */
  allowedServiceAccounts: readonly string[];
  /** Absolute host directories hostPath volumes may mount (the directory itself or below it). */
  allowedHostPaths: readonly string[];
  /** Capabilities allowed in securityContext.capabilities.add beyond SAFE_CAPABILITIES. */
  allowedCapabilities: readonly string[];
}

export interface PodPolicyViolation {
  /** Field path from the object root: `spec.serving.expertShards.template.spec.containers[0].securityContext.privileged`. */
  path: string;
  message: string;
}

/** The capabilities the Pod Security Standards' baseline profile allows to add. */
export const SAFE_CAPABILITIES: readonly string[] = [
  "AUDIT_WRITE",
  "CHOWN",
  "DAC_OVERRIDE",
  "FOWNER",
  "FSETID",
  "KILL",
  "MKNOD",
  "NET_BIND_SERVICE",
  "SETFCAP",
  "SETGID",
  "SETPCAP",
  "SETUID",
  "SYS_CHROOT",
];

export const DEFAULT_POD_POLICY: PodTemplatePolicy = {
  mode: "restricted",
  allowedServiceAccounts: ["default"],
  allowedHostPaths: [],
  allowedCapabilities: [],
};

type Obj = Record<string, unknown>;
const obj = (x: unknown): Obj => (typeof x === "object" && x !== null && !Array.isArray(x) ? (x as Obj) : {});
const list = (x: unknown): unknown[] => (Array.isArray(x) ? x : []);

/** Violations of both pod templates of a spec (empty when mode is "none"). */
export function checkPodTemplatePolicies(spec: MoEDeploymentSpec, policy: PodTemplatePolicy): PodPolicyViolation[] {
  if (policy.mode === "none") return [];
  return [
    ...(spec.serving.router
      ? checkPodTemplate(spec.serving.router.template, "spec.serving.router.template", policy)
      : []),
    ...(spec.serving.expertShards
      ? checkPodTemplate(spec.serving.expertShards.template, "spec.serving.expertShards.template", policy)
      : []),
    ...(spec.serving.wideEP
      ? checkPodTemplate(spec.serving.wideEP.template, "spec.serving.wideEP.template", policy)
      : []),
    ...checkStaging(spec, policy),
  ];
}

/** The staging Jobs mount spec.prewarm.staging.hostPath: it must be allowed like a template's hostPath. */
function checkStaging(spec: MoEDeploymentSpec, policy: PodTemplatePolicy): PodPolicyViolation[] {
  const staging = spec.prewarm.staging;
  if (!staging.enabled) return [];
  const out: PodPolicyViolation[] = [];
  checkHostPath({ hostPath: { path: staging.hostPath } }, "spec.prewarm.staging.hostPath", policy, out);
  return out;
}

/** Violations of one pod template; `path` is the template's field path. */
export function checkPodTemplate(template: PodTemplate, path: string, policy: PodTemplatePolicy): PodPolicyViolation[] {
  const out: PodPolicyViolation[] = [];
  const spec = obj(template.spec);
  const at = `${path}.spec`;
  for (const field of ["hostNetwork", "hostPID", "hostIPC"]) {
    if (spec[field] === true)
      out.push({ path: `${at}.${field}`, message: "host namespaces are not allowed by the operator's pod policy" });
  }
  checkServiceAccount(spec, at, policy, out);
  list(spec.volumes).forEach((v, i) => checkHostPath(obj(v), `${at}.volumes[${i}].hostPath`, policy, out));
  checkSecurityContext(obj(spec.securityContext), `${at}.securityContext`, policy, out);
  for (const kind of ["initContainers", "containers", "ephemeralContainers"]) {
    list(spec[kind]).forEach((c, i) =>
      checkSecurityContext(obj(obj(c).securityContext), `${at}.${kind}[${i}].securityContext`, policy, out),
    );
  }
  return out;
}

function checkServiceAccount(spec: Obj, at: string, policy: PodTemplatePolicy, out: PodPolicyViolation[]): void {
  for (const field of ["serviceAccountName", "serviceAccount"]) {
    const name = spec[field];
    if (name === undefined || name === "") continue;
    if (typeof name !== "string" || !policy.allowedServiceAccounts.includes(name)) {
      out.push({
        path: `${at}.${field}`,
        message: `ServiceAccount ${JSON.stringify(name)} is not allowed by the operator's pod policy (allowed: ${policy.allowedServiceAccounts.join(", ") || "none"})`,
      });
    }
  }
}

function checkHostPath(volume: Obj, at: string, policy: PodTemplatePolicy, out: PodPolicyViolation[]): void {
  if (volume.hostPath === undefined) return;
  const path = obj(volume.hostPath).path;
  if (typeof path === "string" && isAllowedHostPath(path, policy.allowedHostPaths)) return;
  const allowed =
    policy.allowedHostPaths.length > 0 ? `allowed: ${policy.allowedHostPaths.join(", ")}` : "none allowed";
  out.push({
    path: at,
    message: `hostPath ${JSON.stringify(path)} is not allowed by the operator's pod policy (${allowed})`,
  });
}

/** True when `path` is one of the allowed directories or below one, without `..` segments. */
export function isAllowedHostPath(path: string, allowed: readonly string[]): boolean {
  if (!path.startsWith("/") || path.split("/").includes("..")) return false;
  const clean = path.replace(/\/+$/, "") || "/";
  return allowed.some((dir) => {
    const d = dir.replace(/\/+$/, "") || "/";
    return clean === d || clean.startsWith(d === "/" ? "/" : `${d}/`);
  });
}

function checkSecurityContext(sc: Obj, at: string, policy: PodTemplatePolicy, out: PodPolicyViolation[]): void {
  if (sc.privileged === true)
    out.push({
      path: `${at}.privileged`,
      message: "privileged containers are not allowed by the operator's pod policy",
    });
  if (sc.allowPrivilegeEscalation === true)
    out.push({
      path: `${at}.allowPrivilegeEscalation`,
      message: "privilege escalation is not allowed by the operator's pod policy",
    });
  if (obj(sc.windowsOptions).hostProcess === true)
    out.push({
      path: `${at}.windowsOptions.hostProcess`,
      message: "host processes are not allowed by the operator's pod policy",
    });
  const allowed = new Set([...SAFE_CAPABILITIES, ...policy.allowedCapabilities.map(normalizeCapability)]);
  list(obj(sc.capabilities).add).forEach((cap, j) => {
    if (typeof cap === "string" && allowed.has(normalizeCapability(cap))) return;
    out.push({
      path: `${at}.capabilities.add[${j}]`,
      message: `capability ${JSON.stringify(cap)} is not allowed by the operator's pod policy (allowed: the Pod Security Standards baseline set${policy.allowedCapabilities.length > 0 ? ` and ${policy.allowedCapabilities.join(", ")}` : ""})`,
    });
  });
}

/** `cap_sys_admin` -> `SYS_ADMIN`. */
export function normalizeCapability(cap: string): string {
  return cap.toUpperCase().replace(/^CAP_/, "");
}
