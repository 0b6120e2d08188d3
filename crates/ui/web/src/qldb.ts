// The ledger from the browser: QLDBSession (StartSession, transactions, statements with their
// pages, commits with the commit digest a driver computes), the control plane's GetDigest and
// GetRevision, Ion rendered faithfully, and QLDB's verification rules computed in the page:
// Ion hash (ion-hash-js over ion-js), `dot` and proof folding with WebCrypto's SHA-256.

import * as ion from "ion-js";
import { digest as ionHashDigest } from "ion-hash-js";
import { awsJson, awsRest } from "./api";

const SESSION_TARGET = "QLDBSession.SendCommand";
/** Pages of one statement's results read at most; the rest is reported as cut. */
export const RESULT_PAGES_MAX = 20;

type Command = Record<string, unknown>;

async function send<T>(command: Command, signal?: AbortSignal): Promise<T> {
  return awsJson<T>(SESSION_TARGET, command, signal, "1.0");
}

/** The Ion hash (SHA-256) of a value. */
export function ionHash(value: ion.dom.Value): Uint8Array {
  return ionHashDigest(value, "sha256");
}

function concat(left: Uint8Array, right: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(left.length + right.length);
  out.set(left);
  out.set(right, left.length);
  return out;
}

/** QLDB's order of hashes: signed bytes, from the last byte towards the first. */
export function compareHashes(left: Uint8Array, right: Uint8Array): number {
  for (let i = Math.min(left.length, right.length) - 1, j = 0; i >= 0; i--, j++) {
    const a = (left[left.length - 1 - j]! << 24) >> 24;
    const b = (right[right.length - 1 - j]! << 24) >> 24;
    if (a !== b) return a < b ? -1 : 1;
  }
  return left.length - right.length;
}

/** QLDB's `dot`: SHA-256 of the smaller hash followed by the larger (WebCrypto). */
export async function dot(left: Uint8Array | null, right: Uint8Array | null): Promise<Uint8Array | null> {
  if (!left) return right;
  if (!right) return left;
  const [smaller, larger] = compareHashes(left, right) > 0 ? [right, left] : [left, right];
  return new Uint8Array(await crypto.subtle.digest("SHA-256", concat(smaller, larger)));
}

export function toBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

export function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text.trim()), (c) => c.charCodeAt(0));
}

export function sameBytes(left: Uint8Array, right: Uint8Array): boolean {
  return left.length === right.length && left.every((byte, index) => byte === right[index]);
}

/** A value as Ion text shows it: decimals, timestamps, blobs and annotations kept. */
export function ionText(value: ion.dom.Value | null): string {
  if (value === null) return "null";
  return ion.dumpText(value);
}

/** A cell of a result table: strings as their text, everything else as Ion text. */
export function cellText(value: ion.dom.Value | null): string {
  if (value === null) return "";
  if (value.getType() === ion.IonTypes.STRING && value.getAnnotations().length === 0 && !value.isNull()) {
    return value.stringValue() ?? "";
  }
  return ionText(value);
}

export interface StatementResult {
  values: ion.dom.Value[];
  /** True when more pages existed than RESULT_PAGES_MAX. */
  cut: boolean;
}

interface Page {
  Values?: Array<{ IonBinary?: string; IonText?: string }>;
  NextPageToken?: string;
}

function pageValues(page: Page): ion.dom.Value[] {
  return (page.Values ?? []).map((holder) => {
    const value = holder.IonBinary !== undefined ? ion.load(fromBase64(holder.IonBinary)) : ion.load(holder.IonText ?? "null");
    if (value === null) throw new Error("the ledger answered an empty value");
    return value;
  });
}

/**
 * Runs one statement (no parameters) in its own transaction, as `sluice sql` does, and commits
 * it with the commit digest QLDB's drivers compute: dot(IonHash(transactionId),
 * IonHash(statement)).
 */
export async function execute(ledger: string, statement: string, signal?: AbortSignal): Promise<StatementResult> {
  const started = await send<{ StartSession: { SessionToken: string } }>({ StartSession: { LedgerName: ledger } }, signal);
  const SessionToken = started.StartSession.SessionToken;
  try {
    const transaction = await send<{ StartTransaction: { TransactionId: string } }>({ SessionToken, StartTransaction: {} }, signal);
    const TransactionId = transaction.StartTransaction.TransactionId;
    const executed = await send<{ ExecuteStatement: { FirstPage: Page } }>(
      { SessionToken, ExecuteStatement: { TransactionId, Statement: statement, Parameters: [] } }, signal);
    let page = executed.ExecuteStatement.FirstPage;
    const values = pageValues(page);
    let pages = 1;
    while (page.NextPageToken && pages < RESULT_PAGES_MAX) {
      const fetched = await send<{ FetchPage: { Page: Page } }>(
        { SessionToken, FetchPage: { TransactionId, NextPageToken: page.NextPageToken } }, signal);
      page = fetched.FetchPage.Page;
      values.push(...pageValues(page));
      pages += 1;
    }
    const transactionHash = ionHash(new ion.dom.String(TransactionId));
    const statementHash = ionHash(new ion.dom.String(statement));
    const commitDigest = await dot(transactionHash, statementHash);
    await send({ SessionToken, CommitTransaction: { TransactionId, CommitDigest: toBase64(commitDigest ?? transactionHash) } }, signal);
    return { values, cut: Boolean(page.NextPageToken) };
  } finally {
    send({ SessionToken, EndSession: {} }).catch(() => undefined);
  }
}

export interface LedgerDigest {
  digest: string;
  tip: string;
}

export async function getDigest(ledger: string, signal?: AbortSignal): Promise<LedgerDigest> {
  const answer = await awsRest<{ Digest: string; DigestTipAddress: { IonText: string } }>(
    "POST", `/ledgers/${encodeURIComponent(ledger)}/digest`, undefined, signal);
  return { digest: answer.Digest, tip: answer.DigestTipAddress.IonText };
}

/** GetRevision with a proof to the digest at `tip`: the revision and proof as Ion text. */
export async function getRevision(
  ledger: string, blockAddress: string, documentId: string, tip: string, signal?: AbortSignal,
): Promise<{ revision: string; proof: string }> {
  const answer = await awsRest<{ Revision: { IonText: string }; Proof?: { IonText: string } }>(
    "POST", `/ledgers/${encodeURIComponent(ledger)}/revision`,
    { BlockAddress: { IonText: blockAddress }, DocumentId: documentId, DigestTipAddress: { IonText: tip } }, signal);
  return { revision: answer.Revision.IonText, proof: answer.Proof?.IonText ?? "[]" };
}

export interface Step {
  label: string;
  value: string;
  ok: boolean | null;
}

/**
 * Checks a revision and its proof against a digest with QLDB's rules, returning every step:
 * the revision hash recomputed from metadata and data, then each fold of the proof, then the
 * comparison with the digest. `verified` is true only if every check passed.
 */
export async function verifyRevision(
  revisionText: string, proofText: string, digestBase64: string,
): Promise<{ steps: Step[]; verified: boolean }> {
  const steps: Step[] = [];
  const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  const revision = ion.load(revisionText);
  if (!revision || revision.getType() !== ion.IonTypes.STRUCT) throw new Error("the revision is not an Ion struct");
  const metadata = revision.get("metadata");
  const data = revision.get("data");
  const claimed = revision.get("hash");
  if (!metadata) throw new Error("the revision has no metadata");
  if (!claimed || claimed.getType() !== ion.IonTypes.BLOB) throw new Error("the revision has no hash blob");
  const metadataHash = ionHash(metadata);
  steps.push({ label: "Ion hash of metadata", value: hex(metadataHash), ok: null });
  let dataHash: Uint8Array | null = null;
  if (data) {
    dataHash = ionHash(data);
    steps.push({ label: "Ion hash of data", value: hex(dataHash), ok: null });
  }
  const revisionHash = (await dot(metadataHash, dataHash)) ?? metadataHash;
  const claimedBytes = claimed.uInt8ArrayValue() ?? new Uint8Array();
  const revisionOk = sameBytes(revisionHash, claimedBytes);
  steps.push({ label: "revision hash = dot(metadata, data), equal to the revision's hash", value: hex(revisionHash), ok: revisionOk });
  const proof = ion.load(proofText);
  if (!proof || proof.getType() !== ion.IonTypes.LIST) throw new Error("the proof is not an Ion list");
  let accumulated = revisionHash;
  for (const [index, node] of (proof.elements() as ion.dom.Value[]).entries()) {
    const bytes = node.uInt8ArrayValue();
    if (!bytes || bytes.length !== 32) throw new Error(`proof node ${index + 1} is not a 32-byte blob`);
    accumulated = (await dot(accumulated, bytes)) ?? accumulated;
    steps.push({ label: `dot with proof node ${index + 1} (${hex(bytes).slice(0, 12)}…)`, value: hex(accumulated), ok: null });
  }
  const digest = fromBase64(digestBase64);
  const digestOk = sameBytes(accumulated, digest);
  steps.push({ label: "folded proof equal to the digest", value: hex(digest), ok: digestOk });
  return { steps, verified: revisionOk && digestOk };
}
