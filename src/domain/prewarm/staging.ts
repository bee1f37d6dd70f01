// Weight staging (issue 19 item 1, docs/adr/0022-weight-staging.md): which GPU nodes should hold
// the model's weights on their local disk ahead of the forecast and the schedules, and which
// staged nodes are no longer needed. The caller turns the plan into Jobs and node marks.
//
// Pure: no clock (nowMs comes in), no I/O. Same input, same plan, whatever the order of the nodes.

/** A stage or evict Job the caller found for a node (read back from the cluster, not remembered). */
export interface StagingJob {
  readonly action: "stage" | "evict";
  readonly state: "running" | "succeeded" | "failed";
  /** The digest the Job was created for. */
  readonly digest: string;
  /** Why it failed (state failed). */
  readonly message?: string;
}

export interface StagingNode {
  readonly name: string;
  /** GPUs no pod requests (what a new shard could get). */
  readonly freeGpus: number;
  /** GPUs this deployment's shards hold on the node. */
  readonly shardGpus: number;
  readonly usdPerGpuHour?: number;
  /** The digest in the node's staging mark, if it has one. */
  readonly markedDigest?: string;
  /** The node's Job for this deployment, if any. */
  readonly job?: StagingJob;
  /**
   * When the plan stopped wanting the node (from the last status): set once when a node is first
   * seen unwanted, absent while it is wanted, so the status does not change while nothing does.
   */
  readonly lastNeededMs?: number;
  /** The node is in the last status's staging list (a stage Job may have written part of the weights). */
  readonly listed?: boolean;
}

export interface StagingInput {
  readonly nodes: readonly StagingNode[];
  /** Shards that exist or are being created now (each holds one GPU). */
  readonly currentShards: number;
  /** Shards needed at the next window: the most of the decision, the forecast and the schedules. */
  readonly neededShards: number;
  /** Digest of the weights to stage (source and model). */
  readonly digest: string;
  readonly maxNodes: number;
  readonly evictAfterMs: number;
  readonly nowMs: number;
  /**
   * Staging was turned off or the deployment is being deleted: nothing is wanted, every node that
   * may hold the weights is evicted now (not after evictAfterMs), and stage Jobs are stopped.
   */
  readonly retiring?: boolean;
}

export type StagedPhase = "Staging" | "Staged" | "Failed" | "Evicting";

export interface StagingPlan {
  /** Nodes the plan wants staged (at most maxNodes), by name. */
  readonly want: readonly string[];
  /** Nodes to create a stage Job on. */
  readonly stage: readonly string[];
  /** Nodes whose stage Job succeeded: mark them with the digest, then delete the Job. */
  readonly mark: readonly string[];
  /** Nodes to create an evict Job on (staged, not wanted for evictAfterMs, or a stale digest). */
  readonly evict: readonly string[];
  /** Nodes whose evict Job succeeded: remove the mark, then delete the Job. */
  readonly unmark: readonly string[];
  /** Jobs to delete without acting on them (made for another digest; still running or failed). */
  readonly deleteJobs: readonly string[];
  /** Each node of the plan with its phase and, when it is not wanted, since when. */
  readonly nodes: readonly { name: string; phase: StagedPhase; lastNeededMs?: number; message?: string }[];
  /** Extra GPUs the plan is staging for (neededShards - currentShards, at least 0). */
  readonly extraGpus: number;
  /** Of extraGpus, free GPUs on the wanted nodes (less than extraGpus: not enough nodes or maxNodes). */
  readonly coveredGpus: number;
}

const byName = (a: StagingNode, b: StagingNode) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

function isStaged(n: StagingNode, digest: string): boolean {
  return n.markedDigest === digest && !(n.job?.action === "evict");
}

function stagingNow(n: StagingNode, digest: string): boolean {
  return n.job?.action === "stage" && n.job.digest === digest && n.job.state !== "failed";
}

/**
 * The order in which nodes are picked for the forecast's extra shards: staged first, then staging,
 * then the cheapest, then the most free GPUs (fewer nodes to stage), then by name.
 */
function pickOrder(digest: string): (a: StagingNode, b: StagingNode) => number {
  const rank = (n: StagingNode) => (isStaged(n, digest) ? 0 : stagingNow(n, digest) ? 1 : 2);
  return (a, b) =>
    rank(a) - rank(b) ||
    (a.usdPerGpuHour ?? Infinity) - (b.usdPerGpuHour ?? Infinity) ||
    b.freeGpus - a.freeGpus ||
    byName(a, b);
}

/** The nodes to hold the weights: enough free GPUs for the extra shards, then marked nodes serving shards. */
function chooseWanted(x: StagingInput): { want: Set<string>; covered: number; extra: number } {
  if (x.retiring) return { want: new Set(), covered: 0, extra: 0 };
  const extra = Math.max(0, x.neededShards - x.currentShards);
  const want = new Set<string>();
  let covered = 0;
  const usable = x.nodes.filter(
    (n) => n.freeGpus > 0 && !(n.job?.state === "failed" && n.job.digest === x.digest) && n.job?.action !== "evict",
  );
  for (const n of [...usable].sort(pickOrder(x.digest))) {
    if (covered >= extra || want.size >= x.maxNodes) break;
    want.add(n.name);
    covered += n.freeGpus;
  }
  // A marked node that runs our shards is in use: it stays staged (restaged when its digest is stale)
  // while there is room.
  for (const n of [...x.nodes].sort(byName)) {
    if (want.size >= x.maxNodes) break;
    if (n.shardGpus > 0 && n.markedDigest !== undefined && n.job?.action !== "evict") want.add(n.name);
  }
  return { want, covered: Math.min(covered, extra), extra };
}

function phaseOf(n: StagingNode, digest: string): StagedPhase | undefined {
  if (n.job?.action === "evict") return "Evicting";
  if (n.job?.action === "stage" && n.job.digest === digest)
    return n.job.state === "failed" ? "Failed" : n.job.state === "running" ? "Staging" : "Staged";
  if (n.markedDigest !== undefined) return "Staged";
  return undefined;
}

/** Where each node goes this round (a Job to create, finish or delete; a mark to write or remove). */
function stepOf(
  n: StagingNode,
  wanted: boolean,
  x: StagingInput,
): "stage" | "mark" | "evict" | "unmark" | "deleteJob" | undefined {
  const job = n.job;
  if (job?.action === "evict") return job.state === "succeeded" ? "unmark" : undefined;
  if (job?.action === "stage") {
    if (job.digest !== x.digest) return "deleteJob";
    return job.state === "succeeded" ? "mark" : undefined; // failed: kept until it is gone (its TTL)
  }
  if (n.markedDigest === undefined) return wanted ? "stage" : undefined;
  if (n.markedDigest !== x.digest) return wanted ? "stage" : "evict";
  if (wanted) return undefined;
  const idleMs = x.nowMs - (n.lastNeededMs ?? x.nowMs);
  return idleMs >= x.evictAfterMs ? "evict" : undefined;
}

/**
 * Retiring: an evict Job finishes (unmark when it succeeded; a failed one is retried once its TTL
 * removed it); a running stage Job is stopped (the node stays listed, so the next round evicts what
 * it wrote); a finished stage Job is deleted and its node evicted; a marked or listed node is evicted.
 */
function retireStepOf(n: StagingNode): "evict" | "unmark" | "deleteJob" | "evictAndDeleteJob" | undefined {
  const job = n.job;
  if (job?.action === "evict") return job.state === "succeeded" ? "unmark" : undefined;
  if (job?.action === "stage") return job.state === "running" ? "deleteJob" : "evictAndDeleteJob";
  if (n.markedDigest !== undefined || n.listed) return "evict";
  return undefined;
}

function planRetiring(x: StagingInput): StagingPlan {
  const steps = { evict: [] as string[], unmark: [] as string[], deleteJob: [] as string[] };
  const nodes: StagingPlan["nodes"][number][] = [];
  for (const n of [...x.nodes].sort(byName)) {
    const step = retireStepOf(n);
    if (step === "evict" || step === "evictAndDeleteJob") steps.evict.push(n.name);
    if (step === "deleteJob" || step === "evictAndDeleteJob") steps.deleteJob.push(n.name);
    if (step === "unmark") steps.unmark.push(n.name);
    if (step === "unmark" || (step === undefined && n.job === undefined)) continue;
    const lastNeededMs = n.lastNeededMs ?? x.nowMs;
    const message = n.job?.action === "evict" && n.job.state === "failed" ? n.job.message : undefined;
    nodes.push({
      name: n.name,
      phase: n.job?.action === "evict" && n.job.state === "failed" ? "Failed" : "Evicting",
      lastNeededMs,
      ...(message ? { message } : {}),
    });
  }
  return {
    want: [],
    stage: [],
    mark: [],
    evict: steps.evict,
    unmark: steps.unmark,
    deleteJobs: steps.deleteJob,
    nodes,
    extraGpus: 0,
    coveredGpus: 0,
  };
}

/**
 * True when retiring is done once this plan's writes succeed: no node is left holding, staging or
 * evicting the weights (the last marks and Jobs go with this plan).
 */
export function retired(plan: StagingPlan): boolean {
  return plan.nodes.length === 0 && plan.evict.length === 0;
}

/** The staging plan for one deployment. Deterministic; never more than maxNodes wanted. */
export function planStaging(x: StagingInput): StagingPlan {
  if (x.retiring) return planRetiring(x);
  const { want, covered, extra } = chooseWanted(x);
  const steps = { stage: [], mark: [], evict: [], unmark: [], deleteJob: [] } as Record<string, string[]>;
  const nodes: StagingPlan["nodes"][number][] = [];
  for (const n of [...x.nodes].sort(byName)) {
    const wanted = want.has(n.name);
    const step = stepOf(n, wanted, x);
    if (step) steps[step]!.push(n.name);
    // The idle clock starts the first time a node is seen unwanted (also when its time was lost).
    const lastNeededMs = wanted ? undefined : (n.lastNeededMs ?? x.nowMs);
    const phase = step === "stage" ? "Staging" : step === "evict" ? "Evicting" : phaseOf(n, x.digest);
    if (!phase || step === "unmark" || step === "deleteJob") continue;
    const message = phase === "Failed" ? n.job?.message : undefined;
    nodes.push({
      name: n.name,
      phase,
      ...(lastNeededMs !== undefined ? { lastNeededMs } : {}),
      ...(message ? { message } : {}),
    });
  }
  return {
    want: [...want].sort(),
    stage: steps.stage!,
    mark: steps.mark!,
    evict: steps.evict!,
    unmark: steps.unmark!,
    deleteJobs: steps.deleteJob!,
    nodes,
    extraGpus: extra,
    coveredGpus: covered,
  };
}

/**
 * Shards the staging plan stages for: the most of what the decision wants now, what the forecast
 * and the open schedule window want, and the floors of schedule windows opening within the
 * staging lead.
 */
export function stagingNeed(x: {
  desiredShards: number;
  forecastShards: number;
  scheduleShards: number;
  upcomingWindowShards: readonly number[];
}): number {
  return Math.max(x.desiredShards, x.forecastShards, x.scheduleShards, ...x.upcomingWindowShards, 0);
}
