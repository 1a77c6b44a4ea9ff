// Talking to the query API: the bearer token (kept in this browser's localStorage, never in a cookie), JSON
// requests, and errors that say what happened.

const TOKEN_KEY = "toogreen.token";

export function storedToken() {
  return localStorage.getItem(TOKEN_KEY);
}

export function storeToken(token) {
  localStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken() {
  localStorage.removeItem(TOKEN_KEY);
}

/** A failed request: its HTTP status and the API's own explanation. */
export class ApiError extends Error {
  constructor(status, detail, path) {
    super(`${status} from ${path}: ${detail}`);
    this.status = status;
    this.detail = detail;
    this.path = path;
  }
}

function headers(extra = {}) {
  const token = storedToken();
  return token ? { Authorization: `Bearer ${token}`, ...extra } : extra;
}

async function failure(response, path) {
  let detail = response.statusText;
  try {
    const body = await response.json();
    if (typeof body.detail === "string") detail = body.detail;
    else if (Array.isArray(body.detail)) {
      // pydantic's validation errors: say which field and what was wrong with it
      detail = body.detail.map((e) => `${(e.loc ?? []).filter((p) => p !== "body").join(".") || "body"}: ${e.msg}`).join("; ");
    } else detail = JSON.stringify(body.detail ?? body);
  } catch {
    // not JSON: keep the status text
  }
  return new ApiError(response.status, detail, path);
}

/** The raw response text of a GET (for the receipt, whose numbers must be read as written). */
export async function getText(path, { signal } = {}) {
  const response = await fetch(path, { headers: headers(), signal });
  if (!response.ok) throw await failure(response, path);
  return response.text();
}

export async function getJson(path, { signal } = {}) {
  const response = await fetch(path, { headers: headers(), signal });
  if (!response.ok) throw await failure(response, path);
  return response.json();
}

export async function postJson(path, body, extraHeaders = {}) {
  const response = await fetch(path, {
    method: "POST",
    headers: headers({ "Content-Type": "application/json", ...extraHeaders }),
    body: JSON.stringify(body),
  });
  if (!response.ok) throw await failure(response, path);
  return response.json();
}
