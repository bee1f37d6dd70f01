// A throwaway PKI for one local control plane, made with the openssl CLI
// (Node's crypto can make keys but not X.509 certificates). ECDSA P-256 keys
// keep generation fast (a few ms each).
import { writeFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { runSync } from "./process.ts";

export interface Pki {
  dir: string;
  caCert: string;
  caKey: string;
  servingCert: string;
  servingKey: string;
  adminCert: string;
  adminKey: string;
  serviceAccountKey: string;
  serviceAccountPub: string;
}

function genKey(path: string): void {
  runSync("openssl", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path]);
}

function signCert(
  dir: string,
  name: string,
  subject: string,
  ext: string,
  pki: { caCert: string; caKey: string },
): { cert: string; key: string } {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.crt`);
  const extFile = join(dir, `${name}.ext`);
  genKey(key);
  runSync("openssl", ["req", "-new", "-key", key, "-subj", subject, "-out", csr]);
  writeFileSync(extFile, ext);
  runSync("openssl", [
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    pki.caCert,
    "-CAkey",
    pki.caKey,
    "-CAcreateserial",
    "-days",
    "30",
    "-sha256",
    "-extfile",
    extFile,
    "-out",
    cert,
  ]);
  return { cert, key };
}

/** A client certificate for `user` in `groups`, signed by the cluster CA. */
export function createClientCert(
  pki: Pick<Pki, "dir" | "caCert" | "caKey">,
  user: string,
  groups: string[],
): { cert: string; key: string } {
  if (!/^[a-zA-Z0-9:._-]+$/.test(user) || groups.some((g) => !/^[a-zA-Z0-9:._-]+$/.test(g)))
    throw new Error(`invalid user or group name: ${user} ${groups.join(",")}`);
  const subject = `${groups.map((g) => `/O=${g}`).join("")}/CN=${user}`;
  return signCert(
    pki.dir,
    `user-${user.replace(/[^a-zA-Z0-9-]/g, "-")}`,
    subject,
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
    pki,
  );
}

/**
 * A serving certificate for a local HTTPS server on 127.0.0.1 (e.g. a webhook the apiserver calls
 * by URL), signed by the cluster CA, so the CA certificate is the caBundle.
 */
export function createServingCert(
  pki: Pick<Pki, "dir" | "caCert" | "caKey">,
  name: string,
): { cert: string; key: string } {
  if (!/^[a-z0-9-]+$/.test(name)) throw new Error(`invalid certificate name: ${name}`);
  return signCert(
    pki.dir,
    `serving-${name}`,
    `/CN=${name}`,
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    pki,
  );
}

export function createPki(dir: string): Pki {
  const caKey = join(dir, "ca.key");
  const caCert = join(dir, "ca.crt");
  genKey(caKey);
  runSync("openssl", [
    "req",
    "-x509",
    "-new",
    "-key",
    caKey,
    "-subj",
    "/CN=moe-operator-local-ca",
    "-days",
    "30",
    "-sha256",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    "-out",
    caCert,
  ]);
  const ca = { caCert, caKey };
  const serving = signCert(
    dir,
    "apiserver",
    "/CN=kube-apiserver",
    [
      "basicConstraints=CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth",
      "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local",
    ].join("\n") + "\n",
    ca,
  );
  const admin = signCert(
    dir,
    "admin",
    "/O=system:masters/CN=moe-admin",
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
    ca,
  );
  const serviceAccountKey = join(dir, "sa.key");
  const serviceAccountPub = join(dir, "sa.pub");
  genKey(serviceAccountKey);
  runSync("openssl", ["pkey", "-in", serviceAccountKey, "-pubout", "-out", serviceAccountPub]);
  return {
    dir,
    caCert,
    caKey,
    servingCert: serving.cert,
    servingKey: serving.key,
    adminCert: admin.cert,
    adminKey: admin.key,
    serviceAccountKey,
    serviceAccountPub,
  };
}

/** A kubeconfig with embedded credentials, so it can be copied anywhere. */
export function renderKubeconfig(opts: {
  server: string;
  caCertFile: string;
  certFile: string;
  keyFile: string;
  name: string;
}): string {
  const b64 = (f: string) => readFileSync(f).toString("base64");
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    `- name: ${opts.name}`,
    "  cluster:",
    `    server: ${opts.server}`,
    `    certificate-authority-data: ${b64(opts.caCertFile)}`,
    "users:",
    `- name: ${opts.name}-admin`,
    "  user:",
    `    client-certificate-data: ${b64(opts.certFile)}`,
    `    client-key-data: ${b64(opts.keyFile)}`,
    "contexts:",
    `- name: ${opts.name}`,
    "  context:",
    `    cluster: ${opts.name}`,
    `    user: ${opts.name}-admin`,
    `current-context: ${opts.name}`,
    "",
  ].join("\n");
}
