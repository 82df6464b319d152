// The API key of a server started with --api-key (or $NEXTWORD_API_KEY): the page asks for it once and
// keeps it for this tab only (sessionStorage: gone when the tab closes, never sent to another site).
// A server that asks for no key is never asked about one.

// The name the tab keeps the key under: one per page address, so that two servers under prefixes of
// one origin (/a/ and /b/ behind one proxy) each keep their own key; the root's is the plain name.
const STORED = storageName(globalThis.location?.pathname ?? '/');

export function storageName(path) {
  const folder = path.replace(/[^/]*$/, '') || '/';
  return folder === '/' ? 'nextword-api-key' : `nextword-api-key ${folder}`;
}

// what a server takes as a key (serve/keys.py): visible ASCII, as an HTTP header carries it
const KEY_CHARS = /^[\x21-\x7e]+$/;

// Resolves to the key to send (null where the server wants none) once GET v1/models answers with
// something other than 401: the stored key first, then each key typed into the page's key form.
export async function askForKey(base = '', doc = document) {
  const storage = sessionStorage();
  let key = storage?.getItem(STORED) ?? null;
  if (!(await refused(base, key))) return key;
  const $ = (id) => doc.getElementById(id);
  const form = $('key-form');
  const input = $('api-key');
  const status = $('key-status');
  $('model-line').textContent = 'this server asks for an API key';
  $('model-card').hidden = true; // a link cannot send the key: the browser would show a 401
  const say = (text, failed = false) => {
    status.textContent = text;
    status.classList.toggle('error', failed);
    if (failed) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  };
  // the rest of the page waits for the key: out of reach (clicks, Tab, a screen reader) until it is in
  const waiting = [doc.querySelector('main'), doc.querySelector('nav.tabs')].filter(Boolean);
  for (const part of waiting) part.inert = true;
  say(key === null ? '' : 'The key this tab kept is no longer accepted.', key !== null);
  // never a native submission: an Enter while a key is being checked would reload the page
  form.addEventListener('submit', (event) => event.preventDefault());
  form.hidden = false;
  input.focus();
  for (;;) {
    key = await submitted(form, input);
    if (!KEY_CHARS.test(key)) {
      say('An API key is letters, digits and punctuation (ASCII), without spaces.', true);
      input.select();
      continue;
    }
    say('Checking the key…');
    if (!(await refused(base, key))) break;
    say('The server did not accept this key.', true);
    input.select();
  }
  storage?.setItem(STORED, key);
  for (const part of waiting) part.inert = false;
  const typing = form.contains(doc.activeElement);
  form.hidden = true;
  if (typing) $('prompt')?.focus(); // not lost to the page's start with the form that held it
  say('');
  $('model-line').textContent = 'loading the model…';
  return key;
}

// The headers that carry `key` (none for null), to merge into a request's own.
export function keyHeaders(key) {
  return key === null || key === undefined ? {} : { authorization: `Bearer ${key}` };
}

// The tab's key, forgotten once the server refuses it after the page started (restarted with other keys):
// the backends keep the key they were made with, so a reload asks for the new one. What to tell the user.
export function keyRefused() {
  sessionStorage()?.removeItem(STORED);
  return 'the server asks for another API key now (it may have restarted): reload the page to enter it';
}

async function refused(base, key) {
  let headers;
  try {
    headers = new Headers(keyHeaders(key));
  } catch {
    return true; // a key no header can carry (a character past Latin-1, a line break): fetch throws at it
  }
  try {
    const response = await fetch(`${base}v1/models`, { headers });
    await response.arrayBuffer(); // read to its end: the request is done, not left open until collected
    return response.status === 401;
  } catch {
    return false; // a server that cannot be reached: the page says so when it asks for the model
  }
}

function submitted(form, input) {
  return new Promise((resolve) => {
    const take = () => {
      const key = input.value.trim();
      if (!key) return;
      form.removeEventListener('submit', take);
      resolve(key);
    };
    form.addEventListener('submit', take);
  });
}

function sessionStorage() {
  try {
    return globalThis.sessionStorage ?? null; // a page whose storage is blocked still works, asking each time
  } catch {
    return null;
  }
}
