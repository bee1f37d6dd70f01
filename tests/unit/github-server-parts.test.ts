import { createSign, generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { isSafeRefName, isValidTreePath } from "../../src/testing/github/git.ts";
import { adaptSchema } from "../../src/testing/github/openapi.ts";
import { verifyAppJwt } from "../../src/testing/github/routes-app.ts";

// Pure parts of the local GitHub API server (src/testing/github): schema adaptation, app JWT checks, names.

const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const NOW_S = 1_800_000_000;

function jwt(claims: object, header: object = { alg: "RS256", typ: "JWT" }, key = privateKey): string {
  const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const unsigned = `${enc(header)}.${enc(claims)}`;
  return `${unsigned}.${createSign("RSA-SHA256").update(unsigned).sign(key).toString("base64url")}`;
}

describe("verifyAppJwt", () => {
  it("accepts an RS256 JWT from the app that expires within 10 minutes", () => {
    expect(verifyAppJwt(jwt({ iat: NOW_S - 60, exp: NOW_S + 540, iss: 1001 }), 1001, publicKey, NOW_S)).toBeNull();
    expect(verifyAppJwt(jwt({ iat: NOW_S - 60, exp: NOW_S + 540, iss: "1001" }), 1001, publicKey, NOW_S)).toBeNull();
  });

  it("refuses expired, too long, foreign, unsigned and garbled tokens with GitHub's messages", () => {
    const other = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
    const cases: [string, RegExp][] = [
      [jwt({ iat: NOW_S - 700, exp: NOW_S - 100, iss: 1001 }), /'exp'/],
      [jwt({ iat: NOW_S, exp: NOW_S + 3600, iss: 1001 }), /too far in the future/],
      [jwt({ iat: NOW_S + 300, exp: NOW_S + 600, iss: 1001 }), /'iat'/],
      [jwt({ iat: NOW_S, exp: NOW_S + 60, iss: 9999 }), /'iss'/],
      [jwt({ iat: NOW_S, exp: NOW_S + 60, iss: 1001 }, { alg: "RS256" }, other), /could not be decoded/],
      [jwt({ iat: NOW_S, exp: NOW_S + 60, iss: 1001 }, { alg: "HS256" }), /RS256/],
      ["not-a-jwt", /could not be decoded/],
      ["a.b.c", /could not be decoded/],
    ];
    for (const [token, message] of cases) expect(verifyAppJwt(token, 1001, publicKey, NOW_S)).toMatch(message);
  });
});

describe("adaptSchema", () => {
  it("checks oneOf as anyOf and turns a typeless nullable into 'or null'; drops examples", () => {
    const adapted = adaptSchema({
      type: "object",
      properties: {
        a: { nullable: true, allOf: [{ type: "string" }] },
        b: { oneOf: [{ type: "string" }, { type: "integer" }], example: 3 },
      },
    });
    expect(adapted).toEqual({
      type: "object",
      properties: {
        a: { anyOf: [{ allOf: [{ type: "string" }] }, { type: "null" }] },
        b: { anyOf: [{ type: "string" }, { type: "integer" }] },
      },
    });
  });

  it("keeps an existing anyOf beside a oneOf", () => {
    expect(adaptSchema({ anyOf: [{ type: "string" }], oneOf: [{ minLength: 1 }] })).toEqual({
      anyOf: [{ type: "string" }],
      allOf: [{ anyOf: [{ minLength: 1 }] }],
    });
  });

  it("keeps properties named like keywords", () => {
    expect(adaptSchema({ properties: { description: { type: "string" }, oneOf: { type: "integer" } } })).toEqual({
      properties: { description: { type: "string" }, oneOf: { type: "integer" } },
    });
  });
});

describe("names the server passes to git", () => {
  it("accepts branch names and refuses option-like or traversing ones", () => {
    for (const ok of ["refs/heads/main", "moe-operator/ns-name", "v1.2"]) expect(isSafeRefName(ok)).toBe(true);
    for (const bad of ["-x", "--upload-pack=x", "a..b", "a/.hidden", "a.lock", "a b", "a//b", "/a", "a/"])
      expect(isSafeRefName(bad)).toBe(false);
  });

  it("accepts relative file paths and refuses traversal and control characters", () => {
    for (const ok of ["a.yaml", "clusters/prod/moe.yaml"]) expect(isValidTreePath(ok)).toBe(true);
    for (const bad of ["", "/a", "a/", "../a", "a/./b", "a\nb", "a\tb"]) expect(isValidTreePath(bad)).toBe(false);
  });
});
