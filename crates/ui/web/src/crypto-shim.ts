// What ion-hash-js takes from Node's `crypto` (esbuild aliases `crypto` to this file): a
// `createHash("sha256")` with update/digest, backed by the synchronous SHA-256 of sha256.ts.

import { Sha256 } from "./sha256";

export function createHash(algorithm: string): { update(bytes: Uint8Array): void; digest(): Uint8Array } {
  if (algorithm.toLowerCase().replace("-", "") !== "sha256") {
    throw new Error(`only SHA-256 is available in the dashboard, not ${algorithm}`);
  }
  const hash = new Sha256();
  return {
    update(bytes: Uint8Array) {
      hash.update(bytes);
    },
    digest() {
      return hash.digest();
    },
  };
}
