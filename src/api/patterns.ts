// Regular expressions shared by the zod schemas and the CRD (OpenAPI `pattern`).
// They must mean the same in JavaScript and in Go's RE2: no lookaround, no
// backreferences, no named groups, no flags.

const DNS_LABEL_PART = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";

/** RFC 1123 label (names of schedules, containers). */
export const DNS_LABEL = `^${DNS_LABEL_PART}$`;
/** RFC 1123 subdomain (ConfigMap names). */
export const DNS_SUBDOMAIN = `^${DNS_LABEL_PART}(\\.${DNS_LABEL_PART})*$`;
/** Label key: optional DNS-subdomain prefix and a name. */
export const LABEL_KEY = `^(${DNS_LABEL_PART}(\\.${DNS_LABEL_PART})*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`;
/** Label value (may be empty). */
export const LABEL_VALUE = "^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$";
/** Extended resource name: a domain prefix is mandatory (nvidia.com/gpu, amd.com/gpu). */
export const EXTENDED_RESOURCE_NAME = `^${DNS_LABEL_PART}(\\.${DNS_LABEL_PART})+/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`;
/** http(s) URL with a host. */
export const HTTP_URL = "^https?://[^\\s/?#@]+([/?#]\\S*)?$";
/** IANA time zone name (checked against the runtime's tz database by the semantic validator). */
export const TIME_ZONE = "^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$";
/** ConfigMap data key. */
export const CONFIGMAP_KEY = "^[-._A-Za-z0-9]+$";
/** Absolute file path. */
export const ABSOLUTE_PATH = "^/\\S*$";
/** metav1.Condition type. */
export const CONDITION_TYPE = `^(${DNS_LABEL_PART}(\\.${DNS_LABEL_PART})*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$`;
/** metav1.Condition reason (CamelCase). */
export const CONDITION_REASON = "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$";

const MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const names = (xs: string[]) => xs.flatMap((x) => [x, x.toLowerCase(), x[0] + x.slice(1).toLowerCase()]).join("|");

function cronField(value: string): string {
  const range = `(${value})(-(${value}))?`;
  const item = `(\\*|${range})(/[0-9]{1,2})?`;
  return `${item}(,${item})*`;
}

/**
 * A standard five-field cron expression (minute hour day-of-month month
 * day-of-week; numbers, names, ranges, lists, steps) or a @nickname. Value ranges
 * are checked here; croner checks the rest (e.g. an expression that never fires).
 */
export const CRON = (() => {
  const minute = cronField("[0-5]?[0-9]");
  const hour = cronField("[01]?[0-9]|2[0-3]");
  const dom = cronField("0?[1-9]|[12][0-9]|3[01]");
  const month = cronField(`0?[1-9]|1[0-2]|${names(MONTHS)}`);
  const dow = cronField(`[0-7]|${names(DAYS)}`);
  const fields = [minute, hour, dom, month, dow].map((f) => `(${f})`).join(" +");
  return `^((${fields})|@(yearly|annually|monthly|weekly|daily|hourly))$`;
})();
