// The one HTTP client of the console: JSON in and out, the bearer token, and every failure turned into an
// ApiError carrying the platform's error body ({"error": {"code", "message"}}) or a description of what
// else went wrong (no answer, a body that is not the error body).

import type { ConsoleConfig } from "./config";
import { readSse, type SseEvent } from "./sse";
import type { UploadTarget } from "./upload";

export type Role = "admin" | "member";
export type DocumentStatus = "pending" | "processing" | "ready" | "failed";

export interface User {
  id: string;
  email: string;
  role: Role;
  org_id: string;
  created_at: string;
}

export interface Org {
  id: string;
  name: string;
  created_at: string;
}

export interface Session {
  token: string;
  user: User;
  org: Org;
}

export interface DocumentItem {
  id: string;
  name: string;
  status: DocumentStatus;
  error: string | null;
  chunk_count: number | null;
  content_hash: string | null;
  metadata: Record<string, unknown>;
  // Uploaded files only (null for text documents): the declared type and size, and the document whose
  // identical bytes were already ingested when this one is a duplicate (then failed).
  content_type?: string | null;
  size?: number | null;
  duplicate_of?: string | null;
  created_at: string;
  updated_at: string;
}

export interface Source {
  document_id: string;
  document_name: string;
  chunk_index: number;
  content: string;
  score: number;
  retrievers?: string[];
  // Location, when the document's format has one: the first page and [first, last] pages of a PDF,
  // the heading path of a section (outermost first).
  page?: number | null;
  pages?: [number, number] | null;
  headings?: string[] | null;
  heading?: string | null;
}

export interface Usage {
  [key: string]: unknown;
}

/** A stored source: the document's text is emptied when the document is deleted. */
export interface StoredSource extends Source {
  document_deleted?: boolean;
}

export interface Conversation {
  id: string;
  title: string | null;
  turn_count: number;
  created_at: string;
  updated_at: string;
}

/**
 * What retrieval searched with: the question itself (`question`), a standalone question a model wrote
 * from the history (`condensed`), or the question with the previous ones (`with_history`).
 */
export interface Retrieval {
  query: string;
  method: "question" | "condensed" | "with_history" | string;
}

export type Message =
  | { id: string; role: "user"; content: string; created_at: string; retrieval?: Retrieval | null }
  | { id: string; role: "assistant"; content: string; created_at: string; sources: StoredSource[]; usage: Usage };

export type KeyScope = "query" | "write" | "admin";

export interface ApiKey {
  id: string;
  name: string;
  scope: KeyScope;
  prefix: string;
  created_at: string;
  last_used_at: string | null;
  expires_at: string | null;
}

/** The body of a question: `conversation_id` continues one of the caller's conversations. */
export interface QueryBody {
  question: string;
  top_k?: number;
  conversation_id?: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryAfterSeconds: number | null = null,
  ) {
    super(message);
    this.name = "ApiError";
  }

  /** A sentence for people: what happened and, where it helps, what to do. */
  describe(): string {
    const hint = hintFor(this.code, this.message, this.status);
    const wait = this.retryAfterSeconds !== null ? ` Retry in ${this.retryAfterSeconds} s.` : "";
    const what = this.message || this.code;
    return `${what}${what.endsWith(".") ? "" : "."}${hint ? ` ${hint}` : ""}${wait}`;
  }
}

const HINTS: Record<string, string> = {
  unauthorized: "Sign in again.",
  invalid_credentials: "Check the e-mail address and password.",
  forbidden: "Only an administrator of the organisation can do this.",
  network_error: "Check the connection and that the platform is running.",
  rate_limited: "Too many attempts.",
  too_many_requests: "The platform is busy.",
  conversation_full: "Start a new conversation to go on.",
  too_many_api_keys: "Revoke a key that is no longer used, then create the new one.",
  // (document_quota_exceeded's message already says to delete some or ask for a larger quota.)
  storage_quota_exceeded: "Delete documents that are no longer needed, or ask the operator for a larger quota.",
  payload_too_large: "Split it into smaller documents.",
};

// A 403 is not always about the role: an API key may lack the scope, or may not hold conversations at
// all (they belong to a person). The message says which; the hint follows it.
function hintFor(code: string, message: string, status: number): string {
  if (code === "forbidden" && /API key/i.test(message)) {
    return /conversation/i.test(message)
      ? "Conversations belong to a signed-in person: sign in with an account to use them."
      : "Use a key with a wider scope, or sign in with an account.";
  }
  return HINTS[code] ?? (status >= 500 ? "The server failed; try again in a moment." : "");
}

/** Reads the error body of a failed response; anything else becomes a description of the status. */
export async function errorFrom(response: Response): Promise<ApiError> {
  const retry = response.headers.get("Retry-After");
  const retryAfter = retry !== null && /^\d+$/.test(retry) ? Number(retry) : null;
  let text = "";
  try {
    text = await response.text();
  } catch {
    // The body could not be read: described by its status below.
  }
  try {
    const parsed = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    const error = parsed?.error;
    if (error && typeof error.code === "string") {
      return new ApiError(response.status, error.code, typeof error.message === "string" ? error.message : "", retryAfter);
    }
  } catch {
    // Not JSON: a proxy's page, say.
  }
  const statusText = response.statusText ? ` ${response.statusText}` : "";
  return new ApiError(response.status, `http_${response.status}`, `The server answered HTTP ${response.status}${statusText}`, retryAfter);
}

export class Api {
  private token: string | null = null;
  /** Called when the API says the token is no longer valid (401 on an authenticated call). */
  onUnauthorized: (() => void) | null = null;

  constructor(readonly config: ConsoleConfig) {}

  setToken(token: string | null): void {
    this.token = token;
  }

  private headers(json: boolean): Headers {
    const headers = new Headers({ Accept: "application/json" });
    if (json) headers.set("Content-Type", "application/json");
    if (this.token) headers.set("Authorization", `Bearer ${this.token}`);
    return headers;
  }

  private async send(method: string, url: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers: this.headers(body !== undefined),
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
    } catch (err) {
      if (err instanceof DOMException && err.name === "AbortError") throw err;
      throw new ApiError(0, "network_error", "The platform could not be reached");
    }
    if (!response.ok) {
      const error = await errorFrom(response);
      if (response.status === 401 && this.token && this.onUnauthorized) this.onUnauthorized();
      throw error;
    }
    return response;
  }

  async request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const response = await this.send(method, `${this.config.apiBaseUrl}${path}`, body, signal);
    if (response.status === 204) return undefined as T;
    return (await response.json()) as T;
  }

  // --- auth and members ---------------------------------------------------------------------------
  register(org_name: string, email: string, password: string): Promise<Session> {
    return this.request("POST", "/auth/register", { org_name, email, password });
  }
  login(email: string, password: string): Promise<Session> {
    return this.request("POST", "/auth/login", { email, password });
  }
  me(): Promise<{ user: User; org: Org }> {
    return this.request("GET", "/me");
  }
  listUsers(): Promise<{ items: User[] }> {
    return this.request("GET", "/users");
  }
  createUser(email: string, password: string, role: Role): Promise<{ user: User }> {
    return this.request("POST", "/users", { email, password, role });
  }
  deleteUser(id: string): Promise<void> {
    return this.request("DELETE", `/users/${encodeURIComponent(id)}`);
  }

  // --- documents ----------------------------------------------------------------------------------
  listDocuments(cursor?: string | null, limit = 50): Promise<{ items: DocumentItem[]; next_cursor: string | null }> {
    const query = new URLSearchParams({ limit: String(limit) });
    if (cursor) query.set("cursor", cursor);
    return this.request("GET", `/documents?${query}`);
  }
  getDocument(id: string, signal?: AbortSignal): Promise<{ document: DocumentItem }> {
    return this.request("GET", `/documents/${encodeURIComponent(id)}`, undefined, signal);
  }
  createDocument(name: string, content: string, metadata?: Record<string, unknown>): Promise<{ document: DocumentItem }> {
    return this.request("POST", "/documents", metadata ? { name, content, metadata } : { name, content });
  }
  deleteDocument(id: string): Promise<void> {
    return this.request("DELETE", `/documents/${encodeURIComponent(id)}`);
  }
  /** Asks for a presigned PUT of a file: the document is created pending; the bytes go to `upload.url`. */
  createUpload(
    name: string,
    content_type: string,
    size: number,
    metadata?: Record<string, unknown>,
  ): Promise<{ document: DocumentItem; upload: UploadTarget }> {
    return this.request("POST", "/documents/uploads", metadata ? { name, content_type, size, metadata } : { name, content_type, size });
  }
  reingestDocument(id: string): Promise<{ document: DocumentItem }> {
    return this.request("POST", `/documents/${encodeURIComponent(id)}/reingest`);
  }

  // --- conversations (a signed-in person's own) -----------------------------------------------------
  listConversations(cursor?: string | null, limit = 50): Promise<{ items: Conversation[]; next_cursor: string | null }> {
    const query = new URLSearchParams({ limit: String(limit) });
    if (cursor) query.set("cursor", cursor);
    return this.request("GET", `/conversations?${query}`);
  }
  createConversation(title?: string): Promise<{ conversation: Conversation }> {
    return this.request("POST", "/conversations", title ? { title } : {});
  }
  /** A conversation and a page of its messages in the order written; `next_cursor` leads to earlier ones. */
  getConversation(
    id: string,
    cursor?: string | null,
    limit = 50,
  ): Promise<{ conversation: Conversation; messages: Message[]; next_cursor: string | null }> {
    const query = new URLSearchParams({ limit: String(limit) });
    if (cursor) query.set("cursor", cursor);
    return this.request("GET", `/conversations/${encodeURIComponent(id)}?${query}`);
  }
  deleteConversation(id: string): Promise<void> {
    return this.request("DELETE", `/conversations/${encodeURIComponent(id)}`);
  }

  // --- API keys (administrators) ------------------------------------------------------------------
  listApiKeys(): Promise<{ items: ApiKey[] }> {
    return this.request("GET", "/api-keys");
  }
  /** The secret is in this answer and nowhere else, ever. */
  createApiKey(name: string, scope: KeyScope, expires_at?: string): Promise<{ api_key: ApiKey; secret: string }> {
    return this.request("POST", "/api-keys", expires_at ? { name, scope, expires_at } : { name, scope });
  }
  revokeApiKey(id: string): Promise<void> {
    return this.request("DELETE", `/api-keys/${encodeURIComponent(id)}`);
  }

  // --- answers ------------------------------------------------------------------------------------
  /**
   * Streams an answer: the events `sources`, `token` (one or more), then `done`, or `error` when the
   * stream fails after it started. Refusals before the stream starts (401, 422, 503...) throw ApiError.
   */
  async *streamQuery(body: QueryBody, signal?: AbortSignal): AsyncGenerator<SseEvent> {
    const headers = this.headers(true);
    headers.set("Accept", "text/event-stream");
    let response: Response;
    try {
      response = await fetch(this.config.streamUrl, { method: "POST", headers, body: JSON.stringify(body), signal });
    } catch (err) {
      if (err instanceof DOMException && err.name === "AbortError") throw err;
      throw new ApiError(0, "network_error", "The platform could not be reached");
    }
    if (!response.ok) {
      const error = await errorFrom(response);
      if (response.status === 401 && this.onUnauthorized) this.onUnauthorized();
      throw error;
    }
    if (!response.body) throw new ApiError(response.status, "no_stream", "The answer arrived without a body");
    yield* readSse(response.body, signal);
  }
}
