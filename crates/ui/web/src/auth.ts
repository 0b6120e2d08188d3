// The dashboard's login under `--security`: `/api/login` checks a user's password and hands the
// page a temporary access key (id, secret, expiry), kept in this tab's sessionStorage; every
// request the page sends to any port (the search API, the AWS APIs, the UI server's /api) is then
// signed with it, AWS Signature Version 4, as any other client of those ports signs. The signer
// is synchronous, on the SHA-256 of sha256.ts, so it needs no WebCrypto (absent on plain HTTP
// pages reached by a host name).

import { Sha256 } from "./sha256";

export interface Session {
  access_key_id: string;
  secret_access_key: string;
  /** Epoch milliseconds. */
  expiration: number;
  username: string;
}

const STORAGE_KEY = "sluice-session";
const REGION = "us-east-1";
const encoder = new TextEncoder();

/** The session of this tab, unless there is none or it has expired. */
export function currentSession(): Session | null {
  try {
    const text = sessionStorage.getItem(STORAGE_KEY);
    if (!text) return null;
    const session = JSON.parse(text) as Session;
    return session.expiration > Date.now() ? session : null;
  } catch {
    return null;
  }
}

export function saveSession(session: Session | null): void {
  if (session) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(session));
  else sessionStorage.removeItem(STORAGE_KEY);
}

function sha256(bytes: Uint8Array): Uint8Array {
  return new Sha256().update(bytes).digest();
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** HMAC-SHA256 (RFC 2104). */
export function hmacSha256(key: Uint8Array, message: Uint8Array): Uint8Array {
  const block = new Uint8Array(64);
  block.set(key.length > 64 ? sha256(key) : key);
  const inner = new Uint8Array(64 + message.length);
  const outer = new Uint8Array(64 + 32);
  for (let i = 0; i < 64; i++) {
    inner[i] = (block[i] ?? 0) ^ 0x36;
    outer[i] = (block[i] ?? 0) ^ 0x5c;
  }
  inner.set(message, 64);
  outer.set(sha256(inner), 64);
  return sha256(outer);
}

/** SigV4's percent-encoding: everything but RFC 3986's unreserved characters (and `/`). */
function uriEncode(text: string, keepSlash: boolean): string {
  let out = "";
  for (const byte of encoder.encode(text)) {
    const c = String.fromCharCode(byte);
    if (/[A-Za-z0-9\-_.~]/.test(c) || (keepSlash && c === "/")) out += c;
    else out += "%" + byte.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

function decode(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, "%20"));
  } catch {
    return text;
  }
}

function canonicalQuery(search: string): string {
  return search
    .replace(/^\?/, "")
    .split("&")
    .filter((pair) => pair !== "")
    .map((pair) => {
      const at = pair.indexOf("=");
      const key = at < 0 ? pair : pair.slice(0, at);
      const value = at < 0 ? "" : pair.slice(at + 1);
      return [uriEncode(decode(key), false), uriEncode(decode(value), false)] as const;
    })
    .sort((a, b) => (a[0] === b[0] ? (a[1] < b[1] ? -1 : 1) : a[0] < b[0] ? -1 : 1))
    .map(([key, value]) => `${key}=${value}`)
    .join("&");
}

/** The SigV4 service of a request, by the API it goes to. */
function serviceOf(url: URL, headers: Record<string, string>): string {
  const target = Object.entries(headers).find(([name]) => name.toLowerCase() === "x-amz-target")?.[1];
  if (target) {
    const prefix = (target.split(".")[0] ?? "").split("_")[0]?.toLowerCase() ?? "";
    return prefix === "qldbsession" ? "qldb" : prefix === "dynamodbstreams" ? "dynamodb" : prefix;
  }
  if (url.pathname.startsWith("/ledgers")) return "qldb";
  if (url.pathname.startsWith("/20")) return "lambda";
  return "es";
}

/**
 * The headers that sign a request with `session` at `now`: `X-Amz-Date` and `Authorization`,
 * over the method, the path and query as the browser sends them, the `host`, `x-amz-date` and
 * the request's own headers, and the body's SHA-256.
 */
export function sign(
  session: Session,
  method: string,
  url: URL,
  headers: Record<string, string>,
  body: string,
  now: Date = new Date(),
): Record<string, string> {
  const amzDate = now.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
  const date = amzDate.slice(0, 8);
  const service = serviceOf(url, headers);
  const signed: [string, string][] = [
    ["host", url.host],
    ["x-amz-date", amzDate],
    ...Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value.trim().replace(/\s+/g, " ")] as [string, string]),
  ];
  signed.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const signedHeaders = signed.map(([name]) => name).join(";");
  const canonical = [
    method.toUpperCase(),
    uriEncode(url.pathname || "/", true),
    canonicalQuery(url.search),
    signed.map(([name, value]) => `${name}:${value}\n`).join(""),
    signedHeaders,
    hex(sha256(encoder.encode(body))),
  ].join("\n");
  const scope = `${date}/${REGION}/${service}/aws4_request`;
  const stringToSign = `AWS4-HMAC-SHA256\n${amzDate}\n${scope}\n${hex(sha256(encoder.encode(canonical)))}`;
  let key = hmacSha256(encoder.encode("AWS4" + session.secret_access_key), encoder.encode(date));
  for (const part of [REGION, service, "aws4_request"]) key = hmacSha256(key, encoder.encode(part));
  const signature = hex(hmacSha256(key, encoder.encode(stringToSign)));
  return {
    "X-Amz-Date": amzDate,
    Authorization: `AWS4-HMAC-SHA256 Credential=${session.access_key_id}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
  };
}

/** Thrown when a port answers 401: the page must (again) log in. */
export class LoginRequired extends Error {
  constructor() {
    super("log in to use the dashboard");
  }
}

/** `fetch`, signed with this tab's session when there is one; a 401 is [`LoginRequired`]. */
export async function signedFetch(input: string, init: RequestInit = {}): Promise<Response> {
  const session = currentSession();
  if (session) {
    const url = new URL(input, location.href);
    const method = init.method ?? "GET";
    const headers: Record<string, string> = { ...((init.headers as Record<string, string> | undefined) ?? {}) };
    const body = typeof init.body === "string" ? init.body : "";
    init = { ...init, headers: { ...headers, ...sign(session, method, url, headers, body) } };
  }
  const response = await fetch(input, init);
  if (response.status === 401) {
    saveSession(null);
    throw new LoginRequired();
  }
  return response;
}

/** Logs in: a temporary access key for `username`, saved for this tab. */
export async function logIn(username: string, password: string): Promise<Session> {
  const response = await fetch("/api/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  const answer = (await response.json().catch(() => ({}))) as Partial<Session> & { message?: string };
  if (!response.ok || !answer.access_key_id || !answer.secret_access_key) {
    throw new Error(answer.message ?? `login failed: ${response.status}`);
  }
  const session = answer as Session;
  saveSession(session);
  return session;
}

/** Ends this tab's session, on the server too. */
export async function logOut(): Promise<void> {
  try {
    await signedFetch("/api/logout", { method: "POST" });
  } catch {
    // An expired session is as good as ended.
  }
  saveSession(null);
}
