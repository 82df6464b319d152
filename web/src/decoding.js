// The generation loop of nextword/runtime/decoding.py: batched prompt prefill in rounds, then one batched
// single-step session call per word; the rules that forbid tokens, the text rendering with stop strings
// and safe streaming, and one random stream per row. Rows leave the batch as they finish, exactly as in
// Python, so an int8 model (whose activations are quantized per batch) sees the same batches.

import { PCG64, SeedSequence } from './random.js';
import { sampleNext } from './sampling.js';
import { EOD } from './tokenizer.js';

export const PROMPT_CHUNK = 256; // tokens per session call when a whole text is fed

const f = Math.fround;

/** What the rules need to know about one prompt, computed once and shared by its rows. */
export class PromptContext {
  constructor(ids, tokenizer, config) {
    this.ids = ids; // <eod> followed by the prompt's tokens
    const last = tokenizer.tokenOf(ids[ids.length - 1]);
    this.previous = last === EOD ? null : last; // the token before the first generated one
    this.ngrams = new Map(); // prompt n-gram prefix (joined ids) -> set of next ids
    this.seen = new Set(); // distinct prompt ids, for the repetition penalty
    const n = config.noRepeatNgramSize;
    if (n) {
      for (let i = 0; i + n - 1 < ids.length; i++) {
        const key = ids.slice(i, i + n - 1).join(',');
        if (!this.ngrams.has(key)) this.ngrams.set(key, new Set());
        this.ngrams.get(key).add(ids[i + n - 1]);
      }
    }
    if (config.repetitionPenalty !== 1) for (const id of ids) this.seen.add(id);
  }
}

/** Every rule that is not sampling itself, applied in place to each step's logits (rows x vocab). */
export class Rules {
  constructor(config, tokenizer) {
    this.banned = [tokenizer.padId];
    if (!config.allowUnknown) this.banned.push(tokenizer.unkId);
    if (!config.stopAtEnd) this.banned.push(tokenizer.eodId);
    this.eod = tokenizer.eodId;
    this.minWords = config.minWords;
    this.penalty = config.repetitionPenalty;
    this.ngram = config.noRepeatNgramSize;
  }

  /** Row j of `logits` continues prompts[rows[j]] with generated[rows[j]]. */
  apply(logits, vocab, rows, prompts, generated) {
    const penalty = f(this.penalty); // numpy divides float32 logits by the penalty as a float32
    rows.forEach((row, j) => {
      const base = j * vocab;
      for (const id of this.banned) logits[base + id] = -Infinity;
      if (this.minWords && generated[row].length < this.minWords) logits[base + this.eod] = -Infinity;
      if (this.penalty !== 1) {
        for (const id of new Set([...prompts[row].seen, ...generated[row]])) {
          const v = logits[base + id];
          logits[base + id] = v > 0 ? f(v / penalty) : f(v * penalty);
        }
      }
      if (this.ngram) for (const id of ngramBans(prompts[row], generated[row], this.ngram)) logits[base + id] = -Infinity;
    });
  }
}

/** Tokens that would complete an n-gram already in prompt + generated text. */
export function ngramBans(prompt, generated, n) {
  if (n === 1) return new Set([...(prompt.ngrams.get('') ?? []), ...generated]);
  const window = [...prompt.ids.slice(-(n - 1)), ...generated]; // the prompt's tail joined to the new tokens
  const prefix = window.slice(-(n - 1)).join(',');
  const bans = new Set(prompt.ngrams.get(prefix) ?? []);
  for (let i = 0; i + n - 1 < window.length; i++) {
    if (window.slice(i, i + n - 1).join(',') === prefix) bans.add(window[i + n - 1]);
  }
  return bans;
}

/** Renders one row's new tokens as text, cuts it at the first stop string, and tells how much of it can
 * be streamed without ever taking a character back. */
export class TextBuilder {
  constructor(tokenizer, previous, stops, lstrip) {
    Object.assign(this, { tokenizer, previous, stops, lstrip });
    this.longest = Math.max(0, ...stops.map((s) => s.length));
    this.text = '';
    this.stopped = false;
  }

  add(token) {
    let piece = this.tokenizer.piece(token, this.previous);
    this.previous = token;
    if (this.lstrip && !this.text) piece = piece.replace(/^ +/, '');
    const start = Math.max(0, this.text.length - this.longest + 1); // a new match must end in the new piece
    this.text += piece;
    if (this.stops.length) {
      const hits = this.stops.map((s) => this.text.indexOf(s, start)).filter((i) => i >= 0);
      if (hits.length) {
        this.text = this.text.slice(0, Math.min(...hits));
        this.stopped = true;
      }
    }
  }

  /** Length of the prefix of `text` that no later stop string can cut. */
  safeLength() {
    if (this.stopped || !this.stops.length) return this.text.length;
    let hold = 0;
    for (const stop of this.stops) {
      for (let k = Math.min(stop.length - 1, this.text.length); k > hold; k--) {
        if (this.text.endsWith(stop.slice(0, k))) {
          hold = k;
          break;
        }
      }
    }
    return this.text.length - hold;
  }
}

/** Rows `rows` of a (batch x width) Float32Array, as a new array. */
export function takeRows(array, rows, width) {
  const out = new Float32Array(rows.length * width);
  rows.forEach((row, i) => out.set(array.subarray(row * width, (row + 1) * width), i * width));
  return out;
}

/**
 * Feed every prompt through the model as one batch; returns the last logits (P x vocab) and the state.
 * Prompts of different lengths go in rounds: each round feeds the rows with prompt left, as many tokens
 * as the shortest of them has (at most `chunk`), so every row ends on its own last token.
 */
export async function prefill(model, prompts, chunk = PROMPT_CHUNK) {
  const vocab = model.vocabSize;
  const widths = model.stateWidths;
  const state = model.initialState(prompts.length);
  const last = new Float32Array(prompts.length * vocab);
  const position = prompts.map(() => 0);
  for (;;) {
    const todo = prompts.map((p, i) => i).filter((i) => position[i] < prompts[i].length);
    if (!todo.length) break;
    const step = Math.min(chunk, ...todo.map((i) => prompts[i].length - position[i]));
    const ids = todo.map((i) => prompts[i].slice(position[i], position[i] + step));
    const out = await model.forward(ids, state.map((s, k) => takeRows(s, todo, widths[k])), -1);
    todo.forEach((row, j) => {
      out.state.forEach((s, k) => state[k].set(s.subarray(j * widths[k], (j + 1) * widths[k]), row * widths[k]));
      position[row] += step;
      if (position[row] === prompts[row].length) last.set(out.logits.subarray(j * vocab, (j + 1) * vocab), row * vocab);
    });
  }
  return { last, state };
}

/** Greedy or sampled generation for a batch of rows (prompts x numReturnSequences); call step() until it
 * resolves to false. */
export class SamplingRun {
  static async start(model, prompts, config, lstrip = []) {
    const run = new SamplingRun(model, prompts, config, lstrip);
    const { last, state } = await prefill(model, run.contexts.map((c) => c.ids));
    run.last = takeRows(last, run.repeat, model.vocabSize); // (A x V)
    run.state = state.map((s, k) => takeRows(s, run.repeat, model.stateWidths[k]));
    return run;
  }

  constructor(model, prompts, config, lstrip) {
    const tok = model.tokenizer;
    Object.assign(this, { model, config });
    this.rules = new Rules(config, tok);
    this.contexts = prompts.map((p) => new PromptContext(p, tok, config));
    this.repeat = this.contexts.flatMap((c, p) => new Array(config.numReturnSequences).fill(p)); // row -> prompt
    this.prompts = this.repeat.map((p) => this.contexts[p]);
    this.generated = this.repeat.map(() => []);
    this.texts = this.repeat.map((p) => new TextBuilder(tok, this.contexts[p].previous, config.stop, Boolean(lstrip[p])));
    const seeds = new SeedSequence(config.seed).spawn(this.repeat.length); // one stream per row
    this.rngs = seeds.map((s) => new PCG64(s));
    this.active = this.repeat.map((p, row) => row); // rows still generating, aligned with last and state
    this.tokens = tok.tokens;
    this.steps = 0;
  }

  /** Generate one more token for every active row; resolves to false once every row is finished. */
  async step() {
    const { config, model } = this;
    const rows = this.active;
    const vocab = model.vocabSize;
    if (!rows.length || this.steps >= config.maxWords) {
      this.active = [];
      return false;
    }
    this.rules.apply(this.last, vocab, rows, this.prompts, this.generated);
    let next = sampleNext(this.last, rows.length, vocab, {
      temperature: config.temperature,
      topK: config.topK,
      topP: config.topP,
      rngs: rows.map((r) => this.rngs[r]),
    });
    const keep = [];
    next.forEach((token, j) => {
      if (token === this.rules.eod) return; // the model ended the document
      const row = rows[j];
      this.generated[row].push(token);
      this.texts[row].add(this.tokens[token]);
      if (!this.texts[row].stopped) keep.push(j);
    });
    this.steps += 1;
    if (keep.length < rows.length) {
      this.active = keep.map((j) => rows[j]);
      next = keep.map((j) => next[j]);
      this.state = this.state.map((s, k) => takeRows(s, keep, model.stateWidths[k]));
    }
    if (!this.active.length || this.steps >= config.maxWords) {
      this.active = [];
      return false;
    }
    const out = await model.forward(next.map((t) => [t]), this.state, 0);
    this.last = out.logits;
    this.state = out.state;
    return true;
  }

  /** Step to the end; each row's text. */
  async run() {
    while (await this.step());
    return this.texts.map((t) => t.text);
  }
}
