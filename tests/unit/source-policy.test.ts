// The operator-side source policy: which Prometheus URLs MoEDeployments may
// query (--prometheus-allowed-urls) and which files a File heat source may read
// (--file-heat-source-dirs, --file-heat-source-max-bytes). Refusals are fixed
// messages naming the field and the rule, never bytes of the file.
import { mkdtemp, mkdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  allowlistEntryProblem,
  prometheusUrlRefusal,
  readAllowedFile,
} from "../../src/controllers/moedeployment/source-policy.ts";

describe("Prometheus URL allowlist", () => {
  const field = "spec.heatSource.prometheus.url";
  const allow = (url: string, list: string[]) =>
    prometheusUrlRefusal(url, field, { prometheusAllowedUrls: list }) === undefined;

  it("an empty list allows nothing, and says which flag to set", () => {
    expect(prometheusUrlRefusal("http://prometheus.monitoring.svc:9090", field, { prometheusAllowedUrls: [] })).toMatch(
      /^spec\.heatSource\.prometheus\.url: .*--prometheus-allowed-urls is empty/,
    );
  });

  it("base URL entries match scheme, host, port and a path prefix on a segment boundary", () => {
    const list = ["http://prometheus.monitoring.svc:9090/prom"];
    expect(allow("http://prometheus.monitoring.svc:9090/prom", list)).toBe(true);
    expect(allow("http://prometheus.monitoring.svc:9090/prom/", list)).toBe(true);
    expect(allow("http://prometheus.monitoring.svc:9090/prom/x", list)).toBe(true);
    expect(allow("http://prometheus.monitoring.svc:9090/promx", list)).toBe(false);
    expect(allow("https://prometheus.monitoring.svc:9090/prom", list)).toBe(false);
    expect(allow("http://prometheus.monitoring.svc:9091/prom", list)).toBe(false);
    expect(allow("http://prometheus.monitoring.svc.evil.com:9090/prom", list)).toBe(false);
    expect(allow("http://user:pw@prometheus.monitoring.svc:9090/prom", list)).toBe(false);
    expect(allow("http://prometheus.monitoring.svc:9090/prom?x=1", list)).toBe(false);
  });

  it("host patterns match the host (a leading *. for subdomains) and the port when given", () => {
    expect(allow("http://prometheus.monitoring.svc:9090", ["prometheus.monitoring.svc:9090"])).toBe(true);
    expect(allow("http://prometheus.monitoring.svc:9091", ["prometheus.monitoring.svc:9090"])).toBe(false);
    expect(allow("http://prometheus.monitoring.svc:1234", ["prometheus.monitoring.svc"])).toBe(true);
    expect(allow("http://a.monitoring.svc", ["*.monitoring.svc"])).toBe(true);
    expect(allow("http://monitoring.svc", ["*.monitoring.svc"])).toBe(false);
    expect(allow("http://xmonitoring.svc", ["*.monitoring.svc"])).toBe(false);
    // Numeric spellings of an address are normalised before matching.
    expect(allow("http://2130706433:9090", ["prometheus.monitoring.svc:9090"])).toBe(false);
    expect(allow("http://2130706433:9090", ["127.0.0.1:9090"])).toBe(true);
  });

  it("malformed entries are named", () => {
    expect(allowlistEntryProblem("http://p:9090")).toBeUndefined();
    expect(allowlistEntryProblem("p.monitoring:9090")).toBeUndefined();
    expect(allowlistEntryProblem("http://u:p@p:9090")).toMatch(/credentials/);
    expect(allowlistEntryProblem("ftp://p")).toMatch(/host\[:port\]/);
    expect(allowlistEntryProblem("a b")).toMatch(/host\[:port\]/);
  });
});

describe("File heat source policy", () => {
  let root: string;
  let allowed: string;
  const policy = () => ({ fileHeatSourceDirs: [allowed], fileHeatSourceMaxBytes: 1024 });

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "heat-file-"));
    allowed = join(root, "allowed");
    await mkdir(allowed);
    await writeFile(
      join(allowed, "heat.json"),
      JSON.stringify({
        logical_count: [
          [0, 0],
          [1, 2],
        ],
      }),
    );
    await writeFile(join(allowed, "big.json"), "x".repeat(4096));
    await writeFile(join(root, "token"), "TOPSECRET-token");
    await symlink(join(root, "token"), join(allowed, "escape.json"));
    await symlink("/dev/zero", join(allowed, "zero.json"));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("is disabled with no allowed directory, naming the field and the flag", async () => {
    const r = await readAllowedFile("/dev/zero", { fileHeatSourceDirs: [], fileHeatSourceMaxBytes: 1024 });
    expect(r).toEqual({
      ok: false,
      message:
        "spec.heatSource.file.path: File heat sources are disabled on this operator (--file-heat-source-dirs is empty); nothing was read",
    });
  });

  it("reads an allowed regular file", async () => {
    const r = await readAllowedFile(join(allowed, "heat.json"), policy());
    expect(r.ok).toBe(true);
  });

  it("refuses paths outside, .. escapes, symlink escapes, devices and files over the cap, never with their bytes", async () => {
    const outcomes = await Promise.all(
      [
        join(root, "token"),
        `${allowed}/../token`,
        join(allowed, "escape.json"),
        join(allowed, "zero.json"),
        "/dev/zero",
        join(allowed, "missing.json"),
        "relative/heat.json",
        join(allowed, "big.json"),
      ].map((p) => readAllowedFile(p, policy())),
    );
    for (const o of outcomes) {
      expect(o.ok).toBe(false);
      if (!o.ok) {
        expect(o.message).toMatch(/^spec\.heatSource\.file\.path: /);
        expect(o.message).not.toContain("TOPSECRET");
      }
    }
    const big = outcomes.at(-1)!;
    expect(!big.ok && big.message).toMatch(/larger than 1024 bytes/);
  });
});
