// Edits a MoEDeployment manifest in a YAML file as text: only the changed scalar
// values are replaced, so comments, key order, quoting and every other document
// in the file stay byte for byte (the `yaml` package's Document API finds the nodes).
import { isMap, isScalar, isSeq, parseAllDocuments, type Document, type Node } from "yaml";
import { FIELD_PATH, type BoundField } from "./propose.ts";
import type { ScheduleChange, ScheduleEntry } from "./schedules.ts";

export interface ManifestTarget {
  readonly name: string;
  readonly namespace: string;
}

export type ManifestEdit =
  | { readonly ok: true; readonly text: string; readonly changed: boolean }
  | { readonly ok: false; readonly problem: string };

/** Largest manifest file edited (bytes of text). */
export const MAX_MANIFEST_CHARS = 1_048_576;

function matches(doc: Document, t: ManifestTarget): boolean {
  const root = doc.contents;
  if (!isMap(root)) return false;
  const kind = doc.getIn(["kind"]);
  const name = doc.getIn(["metadata", "name"]);
  const ns = doc.getIn(["metadata", "namespace"]);
  return kind === "MoEDeployment" && name === t.name && (ns === undefined || ns === null || ns === t.namespace);
}

function formatNumber(field: BoundField, v: number): string {
  return field === "maxUsdPerHour" ? String(Math.round(v * 100) / 100) : String(Math.round(v));
}

interface Splice {
  start: number;
  end: number;
  text: string;
}

const column = (text: string, pos: number) => pos - (text.lastIndexOf("\n", pos - 1) + 1);

/** Where text goes after a node: the start of the line after it (a newline first at the end of a file without one). */
function after(text: string, node: Node): { pos: number; prefix: string } {
  const end = node.range![1];
  if (text[end - 1] === "\n") return { pos: end, prefix: "" };
  const nl = text.indexOf("\n", end);
  return nl === -1 ? { pos: text.length, prefix: "\n" } : { pos: nl + 1, prefix: "" };
}

function scheduleItem(e: ScheduleEntry, indent: number): string {
  const pad = " ".repeat(indent);
  return [
    `${pad}- name: ${e.name}`,
    `${pad}  start: ${JSON.stringify(e.start)}`,
    `${pad}  durationMinutes: ${e.durationMinutes}`,
    `${pad}  minShards: ${e.minShards}`,
    `${pad}  timeZone: ${e.timeZone}`,
    "",
  ].join("\n");
}

/** A string scalar's new source text in the style of the old one. */
function stringLike(node: { type?: string }, v: string): string {
  if (node.type === "QUOTE_SINGLE") return `'${v.replace(/'/g, "''")}'`;
  if (node.type === "PLAIN" && /^[0-9][-0-9 */,]*$/.test(v)) return v;
  return JSON.stringify(v);
}

/** Splices changing a learned entry in place (its name kept). */
function replaceEntry(doc: Document, c: ScheduleChange, where: string): Splice[] | string {
  const seq = doc.getIn(["spec", "prewarm", "schedules"], true);
  const item = isSeq(seq) ? seq.items.find((i) => isMap(i) && i.get("name") === c.replaces) : undefined;
  if (!isMap(item)) return `${where}: spec.prewarm.schedules has no entry named ${c.replaces}`;
  const out: Splice[] = [];
  const fields: [keyof ScheduleEntry, string | number][] = [
    ["start", c.entry.start],
    ["durationMinutes", c.entry.durationMinutes],
    ["minShards", c.entry.minShards],
  ];
  for (const [field, value] of fields) {
    const node = item.get(field, true);
    if (!isScalar(node) || !node.range || typeof node.value !== typeof value)
      return `${where}: spec.prewarm.schedules[${c.replaces}].${field} is not a plain ${typeof value}, so it cannot be edited`;
    if (node.value === value) continue;
    out.push({
      start: node.range[0],
      end: node.range[1],
      text: typeof value === "string" ? stringLike(node, value) : String(value),
    });
  }
  return out;
}

/** One splice adding new entries: to the block list, or a new schedules (and prewarm) key. */
function appendEntries(text: string, doc: Document, entries: ScheduleEntry[], where: string): Splice | string {
  const seq = doc.getIn(["spec", "prewarm", "schedules"], true);
  if (isSeq(seq) && seq.range) {
    if (seq.flow) {
      if (seq.items.length > 0)
        return `${where}: spec.prewarm.schedules is a flow sequence ([...]); write it as a block list to let the operator add entries`;
      const prewarm = doc.getIn(["spec", "prewarm"], true);
      const key = isMap(prewarm)
        ? prewarm.items.find((p) => isScalar(p.key) && p.key.value === "schedules")?.key
        : undefined;
      const indent = isScalar(key) && key.range ? column(text, key.range[0]) + 2 : 2;
      const body = entries.map((e) => scheduleItem(e, indent)).join("");
      let start = seq.range[0];
      while (text[start - 1] === " ") start--;
      return { start, end: seq.range[1], text: `\n${body.replace(/\n$/, "")}` };
    }
    const last = seq.items[seq.items.length - 1] as Node;
    const at = after(text, last);
    const indent = column(text, seq.range[0]);
    return { start: at.pos, end: at.pos, text: at.prefix + entries.map((e) => scheduleItem(e, indent)).join("") };
  }
  if (seq !== undefined && seq !== null) return `${where}: spec.prewarm.schedules is not a list`;
  const prewarm = doc.getIn(["spec", "prewarm"], true);
  const host = isMap(prewarm) ? prewarm : doc.getIn(["spec"], true);
  if (!isMap(host) || host.flow || !host.range || host.items.length === 0)
    return `${where}: spec${isMap(prewarm) ? ".prewarm" : ""} is not a block mapping, so schedules cannot be added`;
  const lastPair = host.items[host.items.length - 1]!;
  const at = after(text, (lastPair.value ?? lastPair.key) as Node);
  const indent = column(text, host.range[0]);
  const pad = " ".repeat(indent);
  const head = isMap(prewarm) ? `${pad}schedules:\n` : `${pad}prewarm:\n${pad}  schedules:\n`;
  const items = entries.map((e) => scheduleItem(e, indent + (isMap(prewarm) ? 2 : 4))).join("");
  return { start: at.pos, end: at.pos, text: at.prefix + head + items };
}

function scheduleSplices(
  text: string,
  doc: Document,
  changes: readonly ScheduleChange[],
  where: string,
): Splice[] | string {
  const out: Splice[] = [];
  // A new entry whose name the file already holds (e.g. merged meanwhile) changes that entry instead.
  const seq = doc.getIn(["spec", "prewarm", "schedules"], true);
  const named = (name: string) => isSeq(seq) && seq.items.some((i) => isMap(i) && i.get("name") === name);
  const resolved = changes.map((x) =>
    x.replaces === undefined && named(x.entry.name) ? { ...x, replaces: x.entry.name } : x,
  );
  for (const c of resolved.filter((x) => x.replaces !== undefined)) {
    const r = replaceEntry(doc, c, where);
    if (typeof r === "string") return r;
    out.push(...r);
  }
  const added = resolved.filter((x) => x.replaces === undefined).map((x) => x.entry);
  if (added.length > 0) {
    const r = appendEntries(text, doc, added, where);
    if (typeof r === "string") return r;
    out.push(r);
  }
  return out;
}

/**
 * Sets the given fields of the MoEDeployment `target` in `text`, and adds or changes the given
 * spec.prewarm.schedules entries. Every bound field must already exist as a number.
 */
export function editManifest(
  text: string,
  path: string,
  target: ManifestTarget,
  values: Partial<Record<BoundField, number>>,
  schedules: readonly ScheduleChange[] = [],
): ManifestEdit {
  if (text.length > MAX_MANIFEST_CHARS)
    return { ok: false, problem: `${path} is larger than ${MAX_MANIFEST_CHARS} characters` };
  const docs = parseAllDocuments(text, { keepSourceTokens: false });
  if (!Array.isArray(docs)) return { ok: false, problem: `${path} is empty` };
  const broken = docs.find((d) => d.errors.length > 0);
  if (broken) return { ok: false, problem: `${path} is not valid YAML: ${broken.errors[0]!.message.split("\n")[0]}` };
  const found = docs.filter((d) => matches(d, target));
  if (found.length !== 1) {
    return {
      ok: false,
      problem: `${path} holds ${found.length === 0 ? "no" : found.length} MoEDeployment named ${target.name}${found.length > 1 ? "s" : ""} (metadata.namespace ${target.namespace} or unset)`,
    };
  }
  const doc = found[0]!;
  const splices: Splice[] = [];
  for (const [field, value] of Object.entries(values) as [BoundField, number][]) {
    const where = FIELD_PATH[field].join(".");
    const node = doc.getIn(FIELD_PATH[field], true);
    if (!isScalar(node) || typeof node.value !== "number" || !node.range) {
      return {
        ok: false,
        problem: `${path}: ${where} of MoEDeployment ${target.name} is not a plain number (templated or missing), so it cannot be edited`,
      };
    }
    const next = formatNumber(field, value);
    if (Number(next) === node.value) continue;
    splices.push({ start: node.range[0], end: node.range[1], text: next });
  }
  const sch = scheduleSplices(text, doc, schedules, `${path}: MoEDeployment ${target.name}`);
  if (typeof sch === "string") return { ok: false, problem: sch };
  splices.push(...sch);
  if (splices.length === 0) return { ok: true, text, changed: false };
  let out = text;
  for (const s of splices.sort((a, b) => b.start - a.start)) out = out.slice(0, s.start) + s.text + out.slice(s.end);
  return { ok: true, text: out, changed: true };
}

/** The fields' current values in the file (undefined when missing or not a number). */
export function readManifestValues(text: string, target: ManifestTarget): Partial<Record<BoundField, number>> {
  const doc = parseAllDocuments(text);
  if (!Array.isArray(doc)) return {};
  const d = doc.find((x) => matches(x, target));
  const out: Partial<Record<BoundField, number>> = {};
  if (!d) return out;
  for (const field of Object.keys(FIELD_PATH) as BoundField[]) {
    const v = d.getIn(FIELD_PATH[field]);
    if (typeof v === "number") out[field] = v;
  }
  return out;
}
