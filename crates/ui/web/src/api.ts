// The dashboard's only ways to reach Sluice: the public Elasticsearch API, the AWS-compatible
// APIs and the UI server's own /api. Every call takes an AbortSignal so a view can cancel what it
// no longer needs (a new query, leaving the view).

import { signedFetch } from "./auth";

/** What `/api/config` says: the ports of the public APIs, on the host the page came from. */
interface ServerConfig {
  version: string;
  search_port: number;
  aws_port: number;
}

export interface Config {
  version: string;
  search_url: string;
  aws_url: string;
}

let config: Config | null = null;

export async function loadConfig(signal?: AbortSignal): Promise<Config> {
  const response = await signedFetch("/api/config", { signal });
  if (!response.ok) throw new Error(`GET /api/config: ${response.status}`);
  const server = (await response.json()) as ServerConfig;
  // The page reaches the other ports by the name it was itself reached by, so a dashboard opened
  // as localhost or by a host name calls the APIs the same way (and they allow that origin).
  // (An IPv6 hostname keeps its brackets in `location.hostname`.)
  const base = `${location.protocol}//${location.hostname}`;
  config = {
    version: server.version,
    search_url: `${base}:${server.search_port}`,
    aws_url: `${base}:${server.aws_port}`,
  };
  return config;
}

export function currentConfig(): Config {
  if (!config) throw new Error("the configuration is not loaded yet");
  return config;
}

/** A raw answer: status, content type and text, whatever the status. */
export interface RawResponse {
  status: number;
  statusText: string;
  contentType: string;
  text: string;
  elapsedMs: number;
}

/** Sends any request to the search API, as the console does. */
export async function searchRequest(
  method: string,
  path: string,
  body: string | null,
  signal?: AbortSignal,
): Promise<RawResponse> {
  const url = currentConfig().search_url + (path.startsWith("/") ? path : "/" + path);
  const started = performance.now();
  const headers: Record<string, string> = {};
  const isNdjson = /(^|\/)_(bulk|msearch)(\?|$)/.test(path);
  if (body !== null && body.trim() !== "") {
    headers["Content-Type"] = isNdjson ? "application/x-ndjson" : "application/json";
  }
  const response = await signedFetch(url, {
    method,
    headers,
    body: body !== null && body.trim() !== "" && method !== "GET" && method !== "HEAD" ? body : undefined,
    signal,
  });
  const text = await response.text();
  return {
    status: response.status,
    statusText: response.statusText,
    contentType: response.headers.get("content-type") ?? "",
    text,
    elapsedMs: performance.now() - started,
  };
}

/** The error of an AWS-compatible call, in the API's own `{__type, message}` shape. */
export class AwsError extends Error {
  constructor(
    public readonly type: string,
    message: string,
    public readonly status: number,
  ) {
    super(`${type}: ${message}`);
  }
}

async function awsAnswer(response: Response): Promise<unknown> {
  const text = await response.text();
  let parsed: unknown = null;
  try {
    parsed = text === "" ? {} : JSON.parse(text);
  } catch {
    throw new AwsError("InvalidResponse", text.slice(0, 200), response.status);
  }
  if (!response.ok) {
    const error = parsed as { __type?: string; message?: string; Message?: string };
    const type = (error.__type ?? "Error").split("#").pop() ?? "Error";
    throw new AwsError(type, error.message ?? error.Message ?? "", response.status);
  }
  return parsed;
}

/** An AWS JSON protocol call (Kinesis, Firehose, QLDBSession): `X-Amz-Target` names it. */
export async function awsJson<T>(
  target: string,
  body: unknown,
  signal?: AbortSignal,
  version: "1.0" | "1.1" = "1.1",
): Promise<T> {
  const response = await signedFetch(currentConfig().aws_url + "/", {
    method: "POST",
    headers: { "Content-Type": `application/x-amz-json-${version}`, "X-Amz-Target": target },
    body: JSON.stringify(body),
    signal,
  });
  return (await awsAnswer(response)) as T;
}

/** An AWS REST-JSON call (the QLDB control plane). */
export async function awsRest<T>(
  method: string,
  path: string,
  body: unknown,
  signal?: AbortSignal,
): Promise<T> {
  const response = await signedFetch(currentConfig().aws_url + path, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  return (await awsAnswer(response)) as T;
}

/** The Prometheus text of `/metrics` on the AWS port. */
export async function metricsText(signal?: AbortSignal): Promise<string> {
  const response = await signedFetch(currentConfig().aws_url + "/metrics", { signal });
  if (!response.ok) throw new Error(`GET /metrics: ${response.status}`);
  return response.text();
}

/** True for the error a cancelled request rejects with. */
export function isAbort(error: unknown): boolean {
  return error instanceof DOMException && error.name === "AbortError";
}
