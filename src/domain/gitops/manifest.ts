// Edits a MoEDeployment manifest in a YAML file as text: only the changed scalar
// values are replaced, so comments, key order, quoting and every other document
// in the file stay byte for byte (the `yaml` package's Document API finds the nodes).
import { isMap, isScalar, parseAllDocuments, type Document } from "yaml";
import { FIELD_PATH, type BoundField } from "./propose.ts";

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

/** Sets the given fields of the MoEDeployment `target` in `text`. Every field must already exist as a number. */
export function editManifest(
  text: string,
  path: string,
  target: ManifestTarget,
  values: Partial<Record<BoundField, number>>,
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
  const splices: { start: number; end: number; text: string }[] = [];
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
