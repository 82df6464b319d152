// The generation loop of nextword/runtime/generator.py for the rows of one call: every prompt fed in
// rounds (one session call per round for all rows), then per step the rules, one draw per row, and one
// batched single-token session call for the rows that go on. Rows leave the batch as they finish, as in
// Python, so an int8 model (whose activations are quantized per session call) sees the same batches.

import { ContinuousCache, requiredCache } from './cache.js';
import { PCG64, SeedSequence } from './random.js';
import { sample } from './sampling.js';
import { EOD, endsWithSpace, Tokenizer } from './tokenizer.js';

export const PROMPT_CHUNK = 256; // tokens per session call when a whole text is fed

const f = Math.fround;

/** What the rules remember of one row's text (prompt included): its n-grams and its distinct ids. */
export class History {
  constructor(promptIds, ngram, penalty) {
    this.n = ngram;
    this.follow = new Map(); // (n-1)-gram (ids joined by ",") -> tokens that followed it
    this.tail = []; // the last n-1 tokens
    this.seen = penalty ? new Set() : null; // distinct ids, in first-seen order
    for (const token of promptIds) this.add(token);
  }

  add(token) {
    if (this.n) {
      if (this.tail.length === this.n - 1) {
        const key = this.tail.join(',');
        if (!this.follow.has(key)) this.follow.set(key, new Set());
        this.follow.get(key).add(token);
        this.tail.push(token);
        this.tail.shift();
      } else {
        this.tail.push(token);
      }
    }
    this.seen?.add(token);
  }

  /** Tokens that would complete an n-gram already in the text. */
  ngramBans() {
    if (this.tail.length < this.n - 1) return [];
    return this.follow.get(this.tail.join(',')) ?? [];
  }
}

/** The rules of one set of options, applied in place to rows' logits. */
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

  /** The ids of a prompt the repetition rules read: all but a leading end-of-document id (the
   * document-start marker is not a word of the text). */
  words(promptIds) {
    return promptIds.length && promptIds[0] === this.eod ? promptIds.slice(1) : promptIds;
  }

  history(promptIds) {
    return new History(this.words(promptIds), this.ngram, this.penalty !== 1);
  }

  /** Forbid what row j of `logits` (rows x vocab) may not choose next. */
  apply(logits, vocab, rows) {
    const penalty = f(this.penalty); // numpy divides float32 logits by the penalty as a float32
    rows.forEach((row, j) => {
      const base = j * vocab;
      for (const id of this.banned) logits[base + id] = -Infinity;
      if (this.minWords && row.generated.length < this.minWords) logits[base + this.eod] = -Infinity;
      if (this.penalty !== 1) {
        for (const id of row.history.seen) {
          const v = logits[base + id];
          logits[base + id] = v > 0 ? f(v / penalty) : f(v * penalty);
        }
      }
      if (this.ngram) for (const id of row.history.ngramBans()) logits[base + id] = -Infinity;
    });
  }
}

/** A stop string as generated text would hold it: NFKC, curly apostrophes as ', as every tokenizer
 * normalizes text (a full-width '！' typed as a stop string is the '!' the text holds). */
export function asInText(stop) {
  return /^[\x00-\x7f]*$/.test(stop)
    ? stop
    : stop.normalize('NFKC').replace(/[\u2018\u2019\u201b\u2032]/g, "'");
}

/** The strings a text is cut at for `stops`: each as the text would hold it (asInText), and, where it
 * holds , ! ? : ;, also with them full-width, as tokenizer format 5 writes them after Chinese and Japanese
 * words ('！' or '!' typed: either form in the text). runtime/text.py's stop_forms. */
export function stopForms(stops) {
  const forms = stops.flatMap((stop) => {
    const form = asInText(stop);
    return [form, form.replace(/[,!?:;]/g, (mark) => FULL_WIDTH_MARKS[mark])];
  });
  return [...new Set(forms)];
}

const FULL_WIDTH_MARKS = { ',': '\uff0c', '!': '\uff01', '?': '\uff1f', ':': '\uff1a', ';': '\uff1b' };

/** Renders one row's new tokens as text, cuts it at the first stop string, and hands out what no later
 * stop string can cut. */
export class TextBuilder {
  /** `starts`: whether the first new token begins a sentence (Tokenizer.beginsSentence of the prompt;
   * undefined: from `previous` alone). */
  /** An empty builder for the continuation of a prompt that ends as `end` (promptEnd()) says. */
  static after(tokenizer, end, stops) {
    return new TextBuilder(tokenizer, end.previous, stops, end.lstrip, end.starts);
  }

  constructor(tokenizer, previous, stops, lstrip, starts = undefined) {
    Object.assign(this, { tokenizer, previous, stops: stopForms(stops), lstrip });
    this.starts = starts ?? (previous === null || Tokenizer.startsAfter(previous, false));
    this.longest = Math.max(0, ...this.stops.map((s) => s.length));
    this.text = '';
    this.stopped = false;
    this.emitted = 0;
  }

  add(token) {
    let piece = this.tokenizer.piece(token, this.previous, this.starts);
    this.starts = Tokenizer.startsAfter(token, this.starts, this.previous);
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

  /** A builder with this one's text so far, to go on from it separately (a beam's candidates). */
  copy() {
    return Object.assign(Object.create(TextBuilder.prototype), this);
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

  /** The text not handed out yet that is safe to hand out now (all of it when `final`). */
  take(final = false) {
    const end = final ? this.text.length : this.safeLength();
    if (end <= this.emitted) return '';
    const piece = this.text.slice(this.emitted, end);
    this.emitted = end;
    return piece;
  }
}

/** Rows `rows` of a (batch x width) Float32Array, as a new array. */
export function takeRows(array, rows, width) {
  const out = new Float32Array(rows.length * width);
  rows.forEach((row, i) => out.set(array.subarray(row * width, (row + 1) * width), i * width));
  return out;
}

/**
 * Every prompt fed through the model, one session call per round (nextword/runtime/step.py's prefill):
 * the prompts with tokens left each take as many as the shortest remainder among them (at most `chunk`;
 * one at a time with a cache, which keeps the state after every position). When done, `state`, `last`
 * (the logits after each prompt) and `cache` hold one row per prompt.
 */
export class Prefill {
  /** @param {number[][]} prompts token ids, each starting with the end-of-document id */
  constructor(model, prompts, cache = false, chunk = PROMPT_CHUNK) {
    Object.assign(this, { model, prompts, chunk });
    this.fed = prompts.map(() => 0);
    this.state = model.initialState(prompts.length);
    this.lastH = model.stateWidths.length - 2; // the last layer's h: what the cache keeps
    this.cache = null;
    if (cache) {
      const settings = requiredCache(model.info.cache);
      this.cache = new ContinuousCache(settings, prompts.length, model.stateWidths[this.lastH]);
      this.chunk = 1;
    }
    this.last = new Float32Array(prompts.length * model.vocabSize);
  }

  get done() {
    return this.fed.every((n, i) => n === this.prompts[i].length);
  }

  /** One session call feeding the next piece of every prompt that has some left. */
  async round() {
    const { model, prompts } = this;
    const widths = model.stateWidths;
    const todo = prompts.map((_, i) => i).filter((i) => this.fed[i] < prompts[i].length);
    const step = Math.min(this.chunk, ...todo.map((i) => prompts[i].length - this.fed[i]));
    const ids = todo.map((i) => prompts[i].slice(this.fed[i], this.fed[i] + step));
    const out = await model.forward(
      ids,
      this.state.map((s, k) => takeRows(s, todo, widths[k])),
      -1,
    );
    this.cache?.observe(
      ids.map((piece) => piece[0]),
      out.state[this.lastH],
      todo,
    );
    todo.forEach((i, j) => {
      out.state.forEach((s, k) =>
        this.state[k].set(s.subarray(j * widths[k], (j + 1) * widths[k]), i * widths[k]),
      );
      this.fed[i] += step;
      if (this.fed[i] === prompts[i].length) {
        this.last.set(
          out.logits.subarray(j * model.vocabSize, (j + 1) * model.vocabSize),
          i * model.vocabSize,
        );
      }
    });
  }

  /** Rounds until every prompt is fed. */
  async run() {
    while (!this.done) await this.round();
    return this;
  }
}

/** The rows of one generate()/stream() call: numReturnSequences rows per prompt, one random stream each. */
export class Generation {
  /** @param {number[][]} prompts token ids, each starting with the end-of-document id */
  /** @param {object[]} ends how each prompt ends (promptEnd(); missing: from its ids) */
  constructor(model, prompts, config, ends = [], chunk = PROMPT_CHUNK) {
    const tok = model.tokenizer;
    Object.assign(this, { model, config });
    this.rules = new Rules(config, tok);
    this.tokens = tok.tokens;
    const perPrompt = config.numReturnSequences;
    const seeds = new SeedSequence(config.seed).spawn(prompts.length * perPrompt); // one stream per row
    this.rows = seeds.map((seed, index) => {
      const p = Math.floor(index / perPrompt);
      const prompt = prompts[p];
      const text = TextBuilder.after(tok, ends[p] ?? idsEnd(tok, prompt), config.stop);
      const history = this.rules.history(prompt);
      return {
        index,
        prompt,
        rng: new PCG64(seed),
        history,
        text,
        generated: [],
        finished: false,
        reason: null,
      };
    });
    // Each prompt is fed once for all its rows; when every prompt is fed, each row gets a copy of its
    // prompt's state, logits and cache (as Python's Generator does).
    this.owner = this.rows.map((_, index) => Math.floor(index / perPrompt)); // each row's prompt
    this.prefill = new Prefill(model, prompts, config.cache, chunk);
    this.cache = null; // with config.cache: the caches, in the order of this.running once fed
    this.feeding = true;
    this.running = [];
  }

  get done() {
    return !this.feeding && !this.running.length;
  }

  /** One step: a prefill round while prompts are fed, then a token for every running row. Resolves to
   * the updates [{row, token, text, finished, reason}] of rows that chose a token or finished. */
  async step() {
    const updates = [];
    if (this.feeding) await this._feed(updates);
    if (this.running.length) await this._decode(updates);
    return updates;
  }

  async run() {
    while (!this.done) await this.step();
    return this.rows.map((row) => row.text.text);
  }

  async _feed(updates) {
    const { model, prefill, rows } = this;
    await prefill.round();
    if (!prefill.done) return;
    this.feeding = false;
    if (this.config.maxWords === 0) {
      for (const row of rows) this._finish(row, 'length', null, updates);
      return;
    }
    const { owner } = this; // every row a copy of its prompt's state, logits and cache
    this.state = prefill.state.map((s, k) => takeRows(s, owner, model.stateWidths[k]));
    this.last = takeRows(prefill.last, owner, model.vocabSize);
    this.cache = prefill.cache;
    this.cache?.take(owner);
    this.running = [...rows];
  }

  async _decode(updates) {
    const { config, model } = this;
    const vocab = model.vocabSize;
    const rows = this.running;
    this.cache?.mixLogits(this.last, vocab); // the model's distribution mixed with the rows' caches
    this.rules.apply(this.last, vocab, rows);
    const rngs = rows.map((row) => row.rng);
    let chosen = sample(this.last, rows.length, vocab, rngs, config.temperature, config.topK, config.topP);
    const ended = rows.map((row, j) => this._take(row, chosen[j], updates));
    if (ended.some(Boolean)) {
      const keep = rows.map((_, j) => j).filter((j) => !ended[j]);
      this.running = keep.map((j) => rows[j]);
      chosen = keep.map((j) => chosen[j]);
      this.state = this.state.map((s, k) => takeRows(s, keep, model.stateWidths[k]));
      this.cache?.take(keep);
    }
    if (!this.running.length) return;
    const out = await model.forward(
      chosen.map((t) => [t]),
      this.state,
      0,
    );
    this.last = out.logits;
    this.state = out.state;
    this.cache?.observe(chosen, out.state[this.prefill.lastH]); // the chosen token and the state after it
  }

  /** Record `token` (-1: nothing allowed) for `row`; true if that finishes it. */
  _take(row, token, updates) {
    if (token < 0 || token === this.rules.eod) {
      this._finish(row, 'end', token >= 0 ? token : null, updates);
      return true;
    }
    row.generated.push(token);
    row.history.add(token);
    row.text.add(this.tokens[token]);
    if (row.text.stopped) {
      this._finish(row, 'stop', token, updates);
      return true;
    }
    if (row.generated.length >= this.config.maxWords) {
      this._finish(row, 'length', token, updates);
      return true;
    }
    updates.push({ row: row.index, token, text: row.text.take(), finished: false, reason: null });
    return false;
  }

  _finish(row, reason, token, updates) {
    row.finished = true;
    row.reason = reason;
    updates.push({ row: row.index, token, text: row.text.take(true), finished: true, reason });
  }
}

/**
 * How a prompt ends, which is all the first new word's spacing and capital depend on (PromptEnd in
 * Python): its last token (null at a document start), whether the first new token begins a sentence,
 * and whether the new text starts without a space (the prompt ends in one). Read from the prompt's
 * tokens as written, so that a mark the vocabulary lacks (¿ in an English model) still counts.
 */
export function promptEnd(tokenizer, prompt) {
  const tokens = tokenizer.tokenize(prompt);
  return {
    previous: tokens.length ? tokens[tokens.length - 1] : null,
    starts: Tokenizer.beginsSentence([...tokens].reverse()),
    lstrip: endsWithSpace(prompt),
  };
}

/** promptEnd() of a prompt given as token ids alone: its ids' tokens, where an unknown word is <unk>. */
export function idsEnd(tokenizer, ids) {
  const last = tokenizer.tokenOf(ids[ids.length - 1]);
  function* reversed() {
    for (let i = ids.length - 1; i >= 0; i--) yield tokenizer.tokenOf(ids[i]);
  }
  return {
    previous: last === EOD ? null : last,
    starts: Tokenizer.beginsSentence(reversed()),
    lstrip: false,
  };
}
