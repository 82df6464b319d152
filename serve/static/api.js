// A backend for the page: the nextword HTTP API of the server that served it.
//
// The page (app.js) talks only to an object with these four methods, so another backend (for instance
// one that runs the model in this browser) can be dropped in with the same shape:
//
//   info(signal)                             -> {id, vocabSize, layers, units, perplexity, defaults,
//                                              limits}
//                                              defaults: the file's decoding defaults the sliders
//                                              start at ({temperature, maxWords, topK, topP}, each
//                                              present only where the file sets it); limits: what
//                                              the backend takes at most ({maxWords, maxPromptChars},
//                                              absent where nothing caps them); sizeLimits: false
//                                              where the server loads model files of any size
//                                              (--no-size-limits), which the browser mode then does too;
//                                              modelDownload: false where the server keeps its model
//                                              file to itself (--no-model-download): no browser mode
//   generate(prompt, options, onText, signal) -> resolves to {finishReason} once done; onText(piece)
//                                              is called with each new piece of text as it arrives
//   suggest(prompt, k, signal)                -> [{word, text, probability}]  (text: what to append)
//   score(text, signal)                       -> {perplexity, totalLogprob, words: [{word, text, logprob,
//                                                probability, unknown}]}
//
// signal: an AbortSignal; once aborted, the call rejects with an AbortError (the page drops answers it
// no longer wants: a suggestion for a prompt since edited, a score of a text since changed).
// options: {maxWords, temperature, topK (0 = off), topP (1 = off), seed (null = random; a BigInt or a
// number)}.

import { keyHeaders, keyRefused } from './key.js';

export class ApiError extends Error {}

// JSON.stringify refuses a BigInt (a seed past 2^53): it is written as the exact integer it is.
const BIGINT_MARK = `bigint-${Math.random().toString(36).slice(2)}-`;
export function jsonWithBigInts(value) {
  const text = JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? BIGINT_MARK + v.toString() : v));
  return text.replace(new RegExp(`"${BIGINT_MARK}(-?[0-9]+)"`, 'g'), '$1');
}

// fetch, where a server that cannot be reached is said so: the browser's own words ("Failed to fetch",
// "NetworkError when attempting to fetch resource") do not tell a user what went wrong
async function request(url, init) {
  try {
    return await fetch(url, init);
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError('cannot reach the server: it may have stopped, or the network is down');
  }
}

async function postJSON(base, path, body, signal, key) {
  const response = await request(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...keyHeaders(key) },
    body: jsonWithBigInts(body),
    signal,
  });
  if (!response.ok) throw await apiError(response);
  return response;
}

// What a refusal without nextword's JSON error (a proxy's page, say) tells a user.
const STATUS = {
  429: 'the server is busy; retry shortly',
  502: 'the server is not answering; retry shortly',
  503: 'the server is unavailable or starting; retry shortly',
  504: 'the server did not answer in time; retry shortly',
};

async function apiError(response) {
  if (response.status === 401) return new ApiError(keyRefused()); // the key was checked as the page started
  const fallback = `${STATUS[response.status] ?? 'the server refused the request'} (HTTP ${response.status})`;
  try {
    const body = await response.json();
    return new ApiError(body.error?.message ?? fallback);
  } catch {
    return new ApiError(fallback);
  }
}

// Server-sent events from a fetch response: yields each event's data (a string).
async function* events(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (error) {
      if (error.name === 'AbortError') throw error;
      throw new ApiError('the connection to the server was lost');
    }
    const { value, done } = chunk;
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).trimStart())
        .join('\n');
      if (data) yield data;
    }
  }
}

// Every setting the page shows is sent, so that a model file's own decoding defaults (top_k, top_p, n,
// num_beams: the server applies them to what a request leaves out) never override the sliders: one
// sampled text, streamed; top-k "off" as 0 and top-p "off" as 1, the values the API reads as "off".

export function completionRequest(prompt, options) {
  const body = {
    prompt,
    max_tokens: options.maxWords,
    temperature: options.temperature,
    top_k: Math.max(0, options.topK),
    top_p: Math.min(options.topP, 1),
    n: 1,
    num_beams: 1,
    stream: true,
  };
  if (options.seed !== null && options.seed !== undefined) body.seed = options.seed;
  return body;
}

// `base`: the folder the server's API is under, ending in "/"; "" is the page's own folder, so that the
// page works behind a reverse proxy that serves the app under a path (https://host/nextword/). `key`: the
// API key a server started with --api-key asks for (key.js), null for none.
export function createServerBackend(base = '', key = null) {
  return {
    name: 'server',

    async info(signal) {
      const response = await request(base + 'v1/models', { headers: keyHeaders(key), signal });
      if (!response.ok) throw await apiError(response);
      const model = (await response.json()).data[0];
      const about = model.nextword ?? {};
      const quality = about.quality?.int8 ?? about.quality?.fp32 ?? {};
      const stored = about.generation_defaults ?? {};
      const defaults = {};
      for (const [name, key] of [
        ['temperature', 'temperature'],
        ['max_words', 'maxWords'],
        ['top_k', 'topK'],
        ['top_p', 'topP'],
      ]) {
        if (stored[name] !== undefined && stored[name] !== null) defaults[key] = stored[name];
      }
      const limits = {};
      if (model.limits?.max_words) limits.maxWords = model.limits.max_words;
      if (model.limits?.max_prompt_chars) limits.maxPromptChars = model.limits.max_prompt_chars;
      if (model.limits?.max_suggestions) limits.maxSuggestions = model.limits.max_suggestions;
      if (model.limits?.size_limits === false) limits.sizeLimits = false;
      if (model.limits?.model_download === false) limits.modelDownload = false;
      return {
        id: model.id,
        vocabSize: about.vocab_size,
        layers: about.layers,
        units: about.units,
        perplexity: quality.perplexity ?? about.metrics?.val_perplexity ?? null,
        bytes: about.bytes ?? null, // the model file's size: what "run in this browser" downloads
        defaults,
        limits,
      };
    },

    async generate(prompt, options, onText, signal) {
      const response = await postJSON(
        base,
        'v1/completions',
        completionRequest(prompt, options),
        signal,
        key,
      );
      let finishReason = null;
      for await (const data of events(response)) {
        if (data === '[DONE]') return { finishReason };
        const chunk = JSON.parse(data);
        if (chunk.error) throw new ApiError(chunk.error.message);
        for (const choice of chunk.choices ?? []) {
          if (choice.text) onText(choice.text);
          if (choice.end_reason) finishReason = choice.end_reason;
        }
      }
      // the server ends every stream with [DONE]: a body that ends before it was cut (a proxy, the network)
      throw new ApiError('the connection to the server was lost');
    },

    async suggest(prompt, k, signal) {
      const response = await postJSON(base, 'v1/suggest', { prompt, k }, signal, key);
      return (await response.json()).suggestions;
    },

    async score(text, signal) {
      const body = await (await postJSON(base, 'v1/score', { text }, signal, key)).json();
      return { perplexity: body.perplexity, totalLogprob: body.total_logprob, words: body.words };
    },
  };
}
