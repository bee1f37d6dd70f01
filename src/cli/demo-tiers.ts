// The demo's cold-start tiers (issue 19, ADR 0019 and 0022): ADR 0019's per-GPU bandwidths and engine
// start, with time compressed like the rest of the demo, so a new shard's first load takes the
// simulator's nominal cold start of its tier divided by DEMO_TIME_COMPRESSION.
import { DEFAULT_ENGINE_START_S, DEFAULT_TIER_BANDWIDTH } from "../sim/coldstart.ts";
import type { LoadTierBandwidth } from "../domain/prewarm/tiers.ts";

/**
 * Demo seconds per real second, chosen so that a remote cold start of a 9-slot DeepSeek-V3 shard
 * (60 s engine start + 23 GB at 57 MB/s = ~465 s) takes ~20 s.
 */
export const DEMO_TIME_COMPRESSION = 24;

/** ADR 0019's tier bandwidths, time-compressed (bytes per demo second). */
export const DEMO_TIER_BANDWIDTH: LoadTierBandwidth = {
  peerBytesPerSecond: DEFAULT_TIER_BANDWIDTH.peerBytesPerSecond * DEMO_TIME_COMPRESSION,
  nodeDiskBytesPerSecond: DEFAULT_TIER_BANDWIDTH.nodeDiskBytesPerSecond * DEMO_TIME_COMPRESSION,
  remoteBytesPerSecond: DEFAULT_TIER_BANDWIDTH.remoteBytesPerSecond * DEMO_TIME_COMPRESSION,
};

/** ADR 0019's engine start, time-compressed: kwok's delay before a shard pod's containers run. */
export const DEMO_ENGINE_START_MS = Math.round((DEFAULT_ENGINE_START_S * 1000) / DEMO_TIME_COMPRESSION);
