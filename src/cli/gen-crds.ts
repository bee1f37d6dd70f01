// Writes crds/moe.dev_moedeployments.yaml from the zod schemas in src/api.
//   node src/cli/gen-crds.ts           write the file
//   node src/cli/gen-crds.ts --check   exit 1 if the committed file is stale
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CRD_FILE, renderCrdYaml } from "../api/crd-gen.ts";

function main(argv: string[]): number {
  const check = argv.includes("--check");
  const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
  const target = join(root, CRD_FILE);
  const want = renderCrdYaml();
  const have = existsSync(target) ? readFileSync(target, "utf8") : undefined;
  if (check) {
    if (have === want) {
      console.log(`${CRD_FILE} is up to date`);
      return 0;
    }
    console.error(
      `${CRD_FILE} is ${have === undefined ? "missing" : "stale"}: run \`make manifests\` and commit the result`,
    );
    return 1;
  }
  if (have === want) {
    console.log(`${CRD_FILE} unchanged`);
    return 0;
  }
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, want);
  console.log(`wrote ${CRD_FILE}`);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
