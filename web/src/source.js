// Reading a model file's bytes from what load() is given: bytes, a Blob, a URL (fetched), or, under Node,
// a file path. The size cap is enforced before the whole file is read, as the Python runtime does.

import { ModelFileError, NextwordError, oneLine } from './errors.js';
import { tooBig } from './model-check.js';
import { shorten } from './pyrepr.js';

const BYTES_NAME = '<model bytes>';

function isNode() {
  return typeof process !== 'undefined' && Boolean(process.versions?.node);
}

/**
 * @param {string | URL | ArrayBuffer | ArrayBufferView | Blob} source
 * @param {number} cap largest file accepted, in bytes
 * @param {typeof fetch} [fetcher] load()'s `fetch` option (default: globalThis.fetch)
 * @param {AbortSignal} [signal] load()'s `signal`: given to the fetch (fetcher(url, { signal })) and to
 *   the read of a file; aborted, the read rejects with its reason
 * @returns {Promise<{name: string, bytes: Uint8Array}>}
 */
export async function readSource(source, cap, fetcher, signal) {
  if (fetcher !== undefined && typeof fetcher !== 'function') {
    throw new NextwordError(
      `fetch must be a function such as (url) => fetch(url, { headers }), got ${described(fetcher)}`,
    );
  }
  if (source instanceof ArrayBuffer) return capped(BYTES_NAME, new Uint8Array(source), cap);
  if (ArrayBuffer.isView(source)) {
    return capped(BYTES_NAME, new Uint8Array(source.buffer, source.byteOffset, source.byteLength), cap);
  }
  if (typeof Blob !== 'undefined' && source instanceof Blob) {
    if (source.size > cap) throw new ModelFileError(tooBig(BYTES_NAME, source.size, cap));
    return { name: BYTES_NAME, bytes: new Uint8Array(await source.arrayBuffer()) };
  }
  if (typeof source === 'string' || source instanceof URL) {
    const text = String(source);
    if (isNode() && !/^(https?|data|blob):/i.test(text)) return readFile(text, cap, signal);
    return fetchBytes(text, cap, fetcher, urlName(text), signal);
  }
  throw new TypeError(
    `model must be a URL, a path, bytes or a Blob, got ${source === null ? 'null' : typeof source}`,
  );
}

function capped(name, bytes, cap) {
  if (bytes.length > cap) throw new ModelFileError(tooBig(name, bytes.length, cap));
  return { name, bytes };
}

async function readFile(path, cap, signal) {
  const [fsName, urlName] = ['node:fs/promises', 'node:url']; // not literals: browser bundlers leave them alone
  const fs = await import(/* webpackIgnore: true */ /* @vite-ignore */ fsName);
  const { fileURLToPath } = await import(/* webpackIgnore: true */ /* @vite-ignore */ urlName);
  const name = path.startsWith('file:') ? fileURLToPath(path) : path;
  if (name.includes('\0'))
    // Node refuses it as an argument; as Python's: the file name can be no file's
    throw new ModelFileError(
      `model file name ${shorten(name)} holds a NUL character, which no file name can`,
    );
  let info;
  try {
    info = await fs.stat(name);
  } catch (error) {
    throw new ModelFileError(unreadable(name, error));
  }
  if (info.isDirectory() && (await fs.stat(`${name}/.nextword-run`).catch(() => null))?.isFile())
    throw new ModelFileError(
      `${name} is a training run folder, not a model file: export it first, nextword export ${name} ` +
        '--out MODEL.onnx',
    );
  if (!info.isFile())
    throw new ModelFileError(`model file ${name} is not a regular file; pass the path of a .onnx file`);
  if (info.size > cap) throw new ModelFileError(tooBig(name, info.size, cap));
  signal?.throwIfAborted();
  let bytes;
  try {
    bytes = new Uint8Array(await fs.readFile(name, { signal }));
  } catch (error) {
    if (signal?.aborted) throw signal.reason; // Node's own AbortError, which holds the reason as its cause
    throw new ModelFileError(unreadable(name, error));
  }
  return capped(name, bytes, cap); // the file may have grown since stat()
}

/**
 * Why the model file `name` cannot be read, from what stat() or readFile() threw, as Python says it:
 * "does not exist" only for a name that names no file (ENOENT, ENOTDIR), else the reason ("ELOOP: too
 * many symbolic links encountered, stat '...'" reads "too many symbolic links encountered"), with the fix
 * for a permission the runtime withholds (Node's permission model, Deno's NotCapable, which has no code).
 */
export function unreadable(name, error) {
  const code = typeof error?.code === 'string' ? error.code : '';
  if (code === 'ENOENT' || code === 'ENOTDIR') return `model file ${name} does not exist (or cannot be read)`;
  let why = oneLine(error)
    .replace(/^[A-Z]+: /, '')
    .replace(/, \w+ '.*'$/s, '');
  if (code === 'ERR_ACCESS_DENIED') {
    why += ` (${code}): this Node runs with its permission model; grant read access to the file (--allow-fs-read)`;
  } else if (error?.name === 'NotCapable' && !/--allow-read/.test(why)) {
    why += ' (NotCapable): grant read permission for the file (deno run --allow-read)';
  }
  return `model file ${name} cannot be read: ${why || code || 'no reason given'}`;
}

/** How messages and model.source name a URL: a data: URL holds the whole file, so its length names it. */
function urlName(url) {
  return /^data:/i.test(url) && url.length > 80 ? `<data: URL, ${url.length} characters>` : url;
}

/** How messages name what a fetch returned, or a `fetch` option: undefined, a string, a plain object... */
function described(value) {
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return 'an array';
  if (typeof value !== 'object') return `a ${typeof value}`;
  const kind = value.constructor?.name;
  return kind && kind !== 'Object' ? `a ${kind}` : 'a plain object';
}

/** What fetch() returns, or one of another realm or a polyfill: what fetchBytes() reads of it. */
function isResponse(value) {
  return (
    typeof value?.ok === 'boolean' &&
    typeof value.headers?.get === 'function' &&
    typeof value.arrayBuffer === 'function'
  );
}

async function fetchBytes(url, cap, fetcher, name, signal) {
  const fetching = fetcher ?? globalThis.fetch;
  const by = fetcher ? ' by the fetch given to load()' : '';
  if (typeof fetching !== 'function') {
    throw new NextwordError(
      `model file ${name} cannot be fetched: this JavaScript environment has no fetch; pass one as ` +
        "load()'s fetch option, or the file's bytes",
    );
  }
  let response;
  try {
    // without a signal as before: a fetch given to load() as (url, init = { headers }) keeps its default
    response = await (signal ? fetching(url, { signal }) : fetching(url));
  } catch (error) {
    if (signal?.aborted) throw signal.reason; // as fetch rejects: not the file's fault
    // a rejection need not be an Error: undefined, a string...
    throw new ModelFileError(`model file ${name} could not be fetched${by}: ${fetchFailure(error)}`);
  }
  if (signal?.aborted) {
    // a fetch given to load() that ignored the signal: its download is let go
    response?.body?.cancel?.(signal.reason)?.catch?.(() => {});
    throw signal.reason;
  }
  if (!isResponse(response)) {
    throw new NextwordError(
      `the fetch given to load() returned ${described(response)} for model file ${name}, not a Response ` +
        '(an object with ok, headers and arrayBuffer()); it must return (or resolve to) what fetch() ' +
        'returns, e.g. (url) => fetch(url, { headers })',
    );
  }
  if (!response.ok) {
    const status = [response.status, response.statusText].filter(Boolean).join(' '); // HTTP/2: no text
    const fix =
      response.status === 401 || response.status === 403
        ? '; the server wants credentials: give load() a fetch that sends them, e.g. { fetch: (url) => ' +
          "fetch(url, { headers: { authorization: 'Bearer ' + key } }) }, or fetch the file yourself and " +
          'pass its bytes'
        : '';
    throw new ModelFileError(
      `model file ${name} could not be fetched (HTTP ${status})${await said(response)}${fix}`,
    );
  }
  const type = response.headers.get('content-type');
  if (/^\s*text\/html\b/i.test(type ?? '')) throw new ModelFileError(htmlPage(name, `Content-Type ${type}`));
  const declared = Number(response.headers.get('content-length'));
  if (declared > cap) throw new ModelFileError(tooBig(name, declared, cap));
  if (typeof response.body?.getReader !== 'function')
    return notHtml(capped(name, new Uint8Array(await response.arrayBuffer()), cap));
  const chunks = [];
  let size = 0;
  const reader = response.body.getReader();
  const stop = () => reader.cancel(signal.reason).catch(() => {}); // a body the signal does not reach
  signal?.addEventListener('abort', stop);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > cap) {
        await reader.cancel();
        throw new ModelFileError(tooBig(name, size, cap, true));
      }
      chunks.push(value);
    }
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    throw error;
  } finally {
    signal?.removeEventListener('abort', stop);
  }
  signal?.throwIfAborted(); // a body cancelled above ends as if it were whole
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return notHtml({ name, bytes });
}

/** What a refusal in JSON says (OpenAI's shape, `{error: {message}}`, as `nextword serve` answers), as
 * ": MESSAGE" cut to 300 characters on one line; "" for any other body. */
async function said(response) {
  if (!/json/i.test(response.headers.get('content-type') ?? '') || typeof response.json !== 'function')
    return '';
  try {
    const body = await response.json();
    const message = body?.error?.message ?? body?.message;
    return typeof message === 'string' && message ? `: ${oneLine(message).slice(0, 300)}` : '';
  } catch {
    return ''; // not JSON after all
  }
}

/** What fetch() rejected with, and why: Node's "fetch failed" keeps the reason (ECONNREFUSED...) in its cause. */
function fetchFailure(error) {
  const cause = error?.cause;
  if (cause === undefined || cause === null) return oneLine(error);
  const code = typeof cause.code === 'string' ? cause.code : '';
  let why = oneLine(cause);
  if (!why || why === String(cause))
    why = code || why; // an AggregateError (several addresses) has no message
  else if (code && !why.includes(code)) why = `${code}: ${why}`;
  return why ? `${oneLine(error)} (${why})` : oneLine(error);
}

/** An HTML page where the model file should be, in `{name, bytes}`: a ModelFileError, not a protobuf error. */
function notHtml(read) {
  const start = new TextDecoder().decode(read.bytes.subarray(0, 1024)).trimStart().toLowerCase();
  if (start.startsWith('<!doctype html') || start.startsWith('<html')) {
    throw new ModelFileError(htmlPage(read.name, 'it begins with an HTML tag'));
  }
  return read;
}

function htmlPage(name, why) {
  return (
    `model file ${name}: the server answered with an HTML page (${why}), not the model file, so the URL ` +
    'likely names no file there (a development server or a single-page-app host answers a missing file ' +
    'with its index.html); check the URL and that the .onnx file is served there'
  );
}
