// The samples' engine arguments are flags that exist (issue 15 item 4): every `--flag` a sample's
// router, shard or EP group container passes is in the verified record (tests/support/engine-flags.ts,
// with where each was read), the record and docs/engine-flags.md agree, and the SGLang samples wire the
// placement ConfigMap, the AFD roles and (WideEP, issue 18) the LeaderWorkerSet's addresses as the
// ADRs say.
import { describe, expect, it } from "vitest";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { parseMoEDeployment, type MoEDeployment } from "../../src/api/index.ts";
import { childNames } from "../../src/controllers/moedeployment/children.ts";
import { PlacementKey } from "../../src/controllers/moedeployment/codecs/placement-configmap.ts";
import { renderLeaderWorkerSet } from "../../src/controllers/moedeployment/codecs/leaderworkerset.ts";
import { engineOfImage, VERIFIED_FLAGS, type Engine } from "../support/engine-flags.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const samplesDir = join(root, "deploy/samples");
const sampleFiles = readdirSync(samplesDir).filter((f) => f.endsWith(".yaml"));

function sample(file: string): MoEDeployment {
  const r = parseMoEDeployment(parse(readFileSync(join(samplesDir, file), "utf8")));
  if (!r.ok) throw new Error(`${file} does not parse`, { cause: r.issues });
  return r.value;
}

interface Container {
  name: string;
  image?: string;
  args?: string[];
  command?: string[];
  volumeMounts?: { name: string; mountPath: string }[];
}
interface PodSpec {
  containers: Container[];
  volumes?: { name: string; configMap?: { name: string } }[];
}

function templates(d: MoEDeployment): { role: "router" | "shard" | "group"; spec: PodSpec }[] {
  const wideEP = d.spec.serving.wideEP;
  if (wideEP) return [{ role: "group", spec: wideEP.template.spec as unknown as PodSpec }];
  return [
    { role: "router", spec: d.spec.serving.router!.template.spec as unknown as PodSpec },
    { role: "shard", spec: d.spec.serving.expertShards!.template.spec as unknown as PodSpec },
  ];
}

/** The `--flag` names of an argument list (`--flag=value` counts as `--flag`). */
function flagsOf(args: readonly string[]): string[] {
  return args.filter((a) => a.startsWith("--")).map((a) => a.split("=")[0]!);
}

const verified = (engine: Engine) => new Set(VERIFIED_FLAGS.filter((f) => f.engine === engine).map((f) => f.flag));
const valueOf = (args: readonly string[], flag: string): string | undefined => {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : args.find((a) => a.startsWith(`${flag}=`))?.slice(flag.length + 1);
};

describe("sample engine flags", () => {
  it.each(sampleFiles)("%s passes only verified flags to its engines", (file) => {
    const d = sample(file);
    for (const { role, spec } of templates(d)) {
      for (const c of spec.containers) {
        const engine = c.image ? engineOfImage(c.image) : undefined;
        // Every engine container of a sample runs an image this record covers.
        expect(engine, `${file} ${role} ${c.name} image ${c.image}`).toBeDefined();
        const unknown = flagsOf([...(c.command ?? []), ...(c.args ?? [])]).filter((f) => !verified(engine!).has(f));
        expect(unknown, `${file} ${role} ${c.name}: flags not in tests/support/engine-flags.ts`).toEqual([]);
      }
    }
  });

  it("finds a flag the record does not have (the check can fail)", () => {
    expect(
      flagsOf(["--model-path", "x", "--expert-worker-mode=ffn"]).filter((f) => !verified("sglang").has(f)),
    ).toEqual(["--expert-worker-mode"]);
  });

  it("docs/engine-flags.md lists every verified flag", () => {
    const doc = readFileSync(join(root, "docs/engine-flags.md"), "utf8");
    const missing = VERIFIED_FLAGS.filter((f) => !doc.includes(`\`${f.flag}\``)).map((f) => `${f.engine} ${f.flag}`);
    expect(missing).toEqual([]);
  });

  it("DeepSeek-V3 (SGLang): the shards start from the mounted placement ConfigMap", () => {
    const d = sample("deepseek-v3.yaml");
    const shard = templates(d).find((t) => t.role === "shard")!.spec;
    const c = shard.containers[0]!;
    const path = valueOf(c.args ?? [], "--init-expert-location")!;
    expect(path).toBeDefined();
    const mount = (c.volumeMounts ?? []).find((m) => path.startsWith(`${m.mountPath}/`))!;
    expect(mount, `a volume mounted at the directory of ${path}`).toBeDefined();
    expect(path).toBe(`${mount.mountPath}/${PlacementKey.sglangMap}`);
    const volume = (shard.volumes ?? []).find((v) => v.name === mount.name)!;
    expect(volume.configMap?.name).toBe(childNames(d.metadata.name!).placement);
    // The physical slots SGLang allocates (experts + redundant) are the placement's at minShards.
    const redundant = Number(valueOf(c.args ?? [], "--ep-num-redundant-experts"));
    expect(d.spec.model.routedExperts + redundant).toBe(d.spec.scaling.minShards * d.spec.model.expertSlotsPerGpu);
    // The operator places experts; SGLang's own EPLB would re-plan from scratch.
    expect(c.args).not.toContain("--enable-eplb");
  });

  it("Qwen3-235B-A22B (SGLang AFD): attention role on the router, FFN role on the shards, one FFN address", () => {
    const d = sample("qwen3-235b-a22b.yaml");
    const [router, shard] = templates(d).map((t) => t.spec.containers[0]!.args ?? []);
    expect(valueOf(router!, "--afd-role")).toBe("attn");
    expect(valueOf(shard!, "--afd-role")).toBe("ffn");
    expect(valueOf(router!, "--afd-ffn-addr")).toBe(valueOf(shard!, "--afd-ffn-addr"));
  });

  it("every sample with topology WideEP has its group template checked above", () => {
    const wide = sampleFiles.filter((f) => sample(f).spec.serving.topology === "WideEP");
    expect(wide).toEqual(
      expect.arrayContaining(["deepseek-r1-wideep.yaml", "deepseek-r1-pd-prefill.yaml", "deepseek-r1-pd-decode.yaml"]),
    );
    for (const f of wide) expect(templates(sample(f)).map((t) => t.role)).toEqual(["group"]);
  });

  it("DeepSeek-R1 WideEP (SGLang): one engine over the group's GPUs, started from the LeaderWorkerSet's addresses", () => {
    const d = sample("deepseek-r1-wideep.yaml");
    const w = d.spec.serving.wideEP!;
    const gpus = String(w.nodesPerGroup * w.gpusPerNode);
    const args = templates(d)[0]!.spec.containers[0]!.args ?? [];
    // DP attention + EP over DeepEP across the whole group (DeepEP needs ep size = tp size).
    expect(["--tp", "--dp", "--ep"].map((f) => valueOf(args, f))).toEqual([gpus, gpus, gpus]);
    expect(args).toContain("--enable-dp-attention");
    expect(valueOf(args, "--moe-a2a-backend")).toBe("deepep");
    // The rendezvous is the leader pod, by the environment variables the LWS pod webhook adds.
    expect(valueOf(args, "--dist-init-addr")).toMatch(/^\$\(LWS_LEADER_ADDRESS\):\d+$/);
    expect(valueOf(args, "--nnodes")).toBe("$(LWS_GROUP_SIZE)");
    expect(valueOf(args, "--node-rank")).toBe("$(LWS_WORKER_INDEX)");
    // LWS_GROUP_SIZE is the LeaderWorkerSet's size, which the operator sets to nodesPerGroup.
    const lws = renderLeaderWorkerSet(d, 1);
    expect(lws.spec.leaderWorkerTemplate.size).toBe(w.nodesPerGroup);
    const c = lws.spec.leaderWorkerTemplate.workerTemplate.spec.containers[0]!;
    expect(c.resources?.limits?.[d.spec.serving.gpu.resourceName]).toBe(String(w.gpusPerNode));
    // The template does not set the LWS variables itself (the webhook's values are the ones expanded).
    expect((c.env ?? []).map((e) => e.name).filter((n) => n.startsWith("LWS_"))).toEqual([]);
  });

  it("DeepSeek-R1 WideEP (SGLang): every group starts from the placement ConfigMap the operator mounts", () => {
    const d = sample("deepseek-r1-wideep.yaml");
    const w = d.spec.serving.wideEP!;
    const pod = renderLeaderWorkerSet(d, 1).spec.leaderWorkerTemplate.workerTemplate.spec;
    const c = pod.containers[0]!;
    const path = valueOf(c.args ?? [], "--init-expert-location")!;
    expect(path).toBeDefined();
    const mount = (c.volumeMounts ?? []).find((m) => path.startsWith(`${m.mountPath}/`))!;
    expect(mount, `a volume mounted at the directory of ${path}`).toBeDefined();
    expect(mount.readOnly).toBe(true);
    expect(path).toBe(`${mount.mountPath}/${PlacementKey.sglangMap}`);
    const volume = (pod.volumes ?? []).find((v) => v.name === mount.name)!;
    expect(volume.configMap?.name).toBe(childNames(d.metadata.name!).placement);
    // SGLang's physical experts (routed + redundant) are one group's slots: the shared placement's size.
    const redundant = Number(valueOf(c.args ?? [], "--ep-num-redundant-experts"));
    expect(d.spec.model.routedExperts + redundant).toBe(
      w.nodesPerGroup * w.gpusPerNode * d.spec.model.expertSlotsPerGpu,
    );
    expect(c.args).not.toContain("--enable-eplb");
  });

  describe("DeepSeek-R1 PD pair (ADR 0024): one MoEDeployment per role", () => {
    const roles = [
      { file: "deepseek-r1-pd-prefill.yaml", role: "prefill", deepep: "normal", metric: "TimeToFirstToken" },
      { file: "deepseek-r1-pd-decode.yaml", role: "decode", deepep: "low_latency", metric: "InterTokenLatency" },
    ] as const;

    it.each(roles)("$file: SGLang's $role side, its own SLO, one engine per group from the LWS addresses", (r) => {
      const d = sample(r.file);
      const w = d.spec.serving.wideEP!;
      const gpus = String(w.nodesPerGroup * w.gpusPerNode);
      const lws = renderLeaderWorkerSet(d, 1);
      const pod = lws.spec.leaderWorkerTemplate.workerTemplate;
      const args = pod.spec.containers[0]!.args ?? [];
      expect(valueOf(args, "--disaggregation-mode")).toBe(r.role);
      expect(valueOf(args, "--deepep-mode")).toBe(r.deepep);
      expect(d.spec.slo.metric).toBe(r.metric);
      // The PD router selects each side by this label; it reaches the pods through the LWS template.
      expect(pod.metadata?.labels?.["llm-d.ai/role"]).toBe(r.role);
      expect(["--tp", "--dp", "--ep"].map((f) => valueOf(args, f))).toEqual([gpus, gpus, gpus]);
      expect(valueOf(args, "--dist-init-addr")).toMatch(/^\$\(LWS_LEADER_ADDRESS\):\d+$/);
      expect(valueOf(args, "--nnodes")).toBe("$(LWS_GROUP_SIZE)");
      // Its own placement: the group's slots are SGLang's physical experts, from its own ConfigMap.
      const redundant = Number(valueOf(args, "--ep-num-redundant-experts"));
      expect(d.spec.model.routedExperts + redundant).toBe(Number(gpus) * d.spec.model.expertSlotsPerGpu);
      const volume = (pod.spec.volumes ?? []).find((v) => v.configMap)!;
      expect(volume.configMap?.name).toBe(childNames(d.metadata.name!).placement);
      // Its own heat: the query selects this deployment's pods.
      expect(d.spec.heatSource.prometheus?.query).toContain('moe_dev_deployment="{{name}}"');
    });

    it("the two sides share the model and the KV transfer, and differ in name, group shape and placement", () => {
      const [p, dd] = roles.map((r) => sample(r.file));
      const arg = (d: MoEDeployment, f: string) =>
        valueOf(renderLeaderWorkerSet(d, 1).spec.leaderWorkerTemplate.workerTemplate.spec.containers[0]!.args ?? [], f);
      // The same model; only the slots per GPU differ (9 at EP32, 2 at EP144: 288 slots each).
      const { expertSlotsPerGpu: prefillSlots, ...prefillModel } = p!.spec.model;
      const { expertSlotsPerGpu: decodeSlots, ...decodeModel } = dd!.spec.model;
      expect(prefillModel).toEqual(decodeModel);
      expect([prefillSlots, decodeSlots]).toEqual([9, 2]);
      expect(arg(p!, "--model-path")).toBe(arg(dd!, "--model-path"));
      expect(arg(p!, "--disaggregation-transfer-backend")).toBe(arg(dd!, "--disaggregation-transfer-backend"));
      expect(childNames(p!.metadata.name!).epGroups).not.toBe(childNames(dd!.metadata.name!).epGroups);
      expect(childNames(p!.metadata.name!).placement).not.toBe(childNames(dd!.metadata.name!).placement);
      // DeepSeek's units: EP32 prefill, EP144 decode.
      expect(p!.spec.serving.wideEP!.nodesPerGroup * p!.spec.serving.wideEP!.gpusPerNode).toBe(32);
      expect(dd!.spec.serving.wideEP!.nodesPerGroup * dd!.spec.serving.wideEP!.gpusPerNode).toBe(144);
    });
  });
});
