// Deterministic beam search, as nextword/runtime/beam.py runs it, operation for operation: all prompts'
// beams in one batch (prompts x numBeams rows, every row fed at every step, so that an int8 model sees
// the batches Python feeds it), log-probabilities in float32 with numpy's exp and log kernels,
// hypotheses' totals in float64, candidates ranked by total, then beam, then token id. A candidate whose
// text reaches a stop string finishes its hypothesis, as an end of the document does.

import { History, Prefill, Rules, TextBuilder, idsEnd, takeRows } from './decoding.js';
import { npExpF32, npLogF32, pairwiseSumF32 } from './float32.js';

const f = Math.fround;

/** Beam search over a batch of prompts; run() resolves to numReturnSequences texts per prompt. */
export class BeamSearch {
  /** @param {number[][]} prompts token ids, each starting with the end-of-document id */
  /** @param {object[]} ends how each prompt ends (promptEnd() of decoding.js; missing: from its ids) */
  constructor(model, prompts, config, ends = []) {
    Object.assign(this, { model, prompts, config, ends });
    this.tokenizer = model.tokenizer;
    this.rules = new Rules(config, this.tokenizer);
    const n = prompts.length;
    const beams = config.numBeams;
    this.beams = Array.from({ length: n }, () => Array.from({ length: beams }, () => []));
    this.scores = new Float64Array(n * beams).fill(-Infinity);
    for (let p = 0; p < n; p++) this.scores[p * beams] = 0; // beams start identical: only the first expands
    this.finished = Array.from({ length: n }, () => []); // [normalized score, ids] per prompt
    this.done = prompts.map(() => false);
    this.steps = 0;
    // with stop strings, each running beam's text so far (a candidate is checked as it is chosen)
    this.beamTexts = config.stop.length ? prompts.map((_, p) => Array(beams).fill(this._builder(p))) : null;
  }

  get over() {
    return this.done.every(Boolean) || this.steps >= this.config.maxWords;
  }

  async run() {
    const { model, prompts, config } = this;
    const prefill = await new Prefill(model, prompts, config.cache).run();
    const repeat = prompts.flatMap((_, p) => Array(config.numBeams).fill(p)); // row -> prompt
    this.state = prefill.state.map((s, k) => takeRows(s, repeat, model.stateWidths[k]));
    this.last = takeRows(prefill.last, repeat, model.vocabSize);
    this.lastH = prefill.lastH;
    this.cache = prefill.cache;
    this.cache?.take(repeat);
    while (await this.step());
    return this.texts();
  }

  /** Expand every running beam by one token; false once the search is over. */
  async step() {
    if (this.over) return false;
    const { model, config, prompts } = this;
    const vocab = model.vocabSize;
    const beams = config.numBeams;
    const rows = prompts.length * beams;
    const last = this.last;
    this.cache?.mixLogits(last, vocab);
    this.rules.apply(last, vocab, this._ruleRows());
    const logp = this._logSoftmax(last, rows, vocab);
    for (let r = 0; r < rows; r++) {
      if (!Number.isNaN(logp[r * vocab])) continue; // a NaN row: the rules left no token
      const p = Math.floor(r / beams);
      if (!this.done[p] && this.scores[r] > -Infinity)
        this._finish(p, this.scores[r], this.beams[p][r % beams]);
      logp.fill(-Infinity, r * vocab, (r + 1) * vocab);
    }
    const sources = new Array(rows).fill(0);
    const tokens = new Array(rows).fill(0);
    const scores = new Float64Array(rows).fill(-Infinity);
    const grown = prompts.map(() => Array.from({ length: beams }, () => []));
    const texts = this.beamTexts;
    const grownTexts = texts ? texts.map((row) => [...row]) : null;
    const eod = this.tokenizer.eodId;
    for (let p = 0; p < prompts.length; p++) {
      if (this.done[p]) continue;
      let kept = 0;
      let width = Math.min(2 * beams, beams * vocab);
      let order = this._candidates(logp, p, width);
      for (let rank = 0; ; rank++) {
        if (rank === order.length) {
          // stop strings finished too many of the best: look further down, the window widened fourfold
          // (each window's order begins with the previous one's)
          if (width >= beams * vocab) break;
          width = Math.min(4 * width, beams * vocab);
          order = this._candidates(logp, p, width);
          if (rank === order.length) break;
        }
        const [score, candidate] = order[rank];
        const beam = Math.floor(candidate / vocab);
        const token = candidate % vocab;
        if (token === eod) {
          if (rank < beams) this._finish(p, score, this.beams[p][beam]); // an end among the best
          continue;
        }
        if (texts) {
          const text = texts[p][beam].copy();
          text.add(this.tokenizer.tokenOf(token));
          if (text.stopped) {
            // a stop string: finished as an end is, with this word
            if (rank < beams) this._finish(p, score, [...this.beams[p][beam], token]);
            continue;
          }
          grownTexts[p][kept] = text;
        }
        const r = p * beams + kept;
        [sources[r], tokens[r], scores[r]] = [beam, token, score];
        grown[p][kept] = [...this.beams[p][beam], token];
        kept += 1;
        if (kept === beams) break;
      }
      if (this.finished[p].length >= beams || kept === 0) this.done[p] = true;
    }
    this.beams = grown;
    this.scores = scores;
    this.beamTexts = grownTexts;
    this.steps += 1;
    if (this.over) return false;
    const parents = sources.map((beam, r) => r - (r % beams) + beam); // the row each beam extends
    const out = await model.forward(
      tokens.map((t) => [t]),
      this.state.map((s, k) => takeRows(s, parents, model.stateWidths[k])),
      0,
    );
    this.last = out.logits;
    this.state = out.state;
    if (this.cache) {
      this.cache.take(parents); // each beam continues its parent's cache with its token
      this.cache.observe(tokens, out.state[this.lastH]);
    }
    return true;
  }

  /** What the rules read of every row: its beam's words and the history of its prompt and beam. */
  _ruleRows() {
    const beams = this.config.numBeams;
    return this.beams.flat().map((generated, r) => ({
      generated,
      history: new History(
        [...this.rules.words(this.prompts[Math.floor(r / beams)]), ...generated],
        this.rules.ngram,
        this.rules.penalty !== 1,
      ),
    }));
  }

  /** log_softmax(logits, dtype=float32) of nextword/runtime/logits.py, row by row (NaN rows: all -inf). */
  _logSoftmax(logits, rows, vocab) {
    const out = new Float32Array(rows * vocab);
    for (let r = 0; r < rows; r++) {
      const base = r * vocab;
      let peak = -Infinity;
      for (let v = 0; v < vocab; v++) {
        const x = logits[base + v];
        if (x > peak || Number.isNaN(x)) peak = x;
        if (Number.isNaN(x)) break;
      }
      for (let v = 0; v < vocab; v++) out[base + v] = npExpF32(f(logits[base + v] - peak));
      const shift = f(peak + npLogF32(pairwiseSumF32(out, base, base + vocab)));
      for (let v = 0; v < vocab; v++) out[base + v] = f(logits[base + v] - shift);
    }
    return out;
  }

  /**
   * Prompt p's candidates [total, beam * vocab + token] at or above the `width`-th largest total (ties
   * all kept), best first, equal totals by beam then token; -inf totals (banned tokens, beams not in use)
   * are never candidates.
   */
  _candidates(logp, p, width) {
    const beams = this.config.numBeams;
    const vocab = this.model.vocabSize;
    const best = []; // the `width` largest finite totals, ascending
    const each = (visit) => {
      for (let b = 0; b < beams; b++) {
        const base = this.scores[p * beams + b];
        if (base === -Infinity) continue;
        const row = (p * beams + b) * vocab;
        for (let t = 0; t < vocab; t++) {
          const total = base + logp[row + t];
          if (total > -Infinity) visit(total, b * vocab + t);
        }
      }
    };
    each((total) => {
      if (best.length === width && total <= best[0]) return;
      let i = best.findIndex((v) => v >= total);
      if (i < 0) i = best.length;
      best.splice(i, 0, total);
      if (best.length > width) best.shift();
    });
    if (!best.length) return [];
    const floor = best.length === width ? best[0] : -Infinity;
    const order = [];
    each((total, candidate) => {
      if (total >= floor) order.push([total, candidate]);
    });
    return order.sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  }

  /** A text builder for a beam of prompt p that holds no word yet. */
  _builder(p) {
    const end = this.ends[p] ?? idsEnd(this.tokenizer, this.prompts[p]);
    return TextBuilder.after(this.tokenizer, end, this.config.stop);
  }

  _finish(p, score, ids) {
    this.finished[p].push([this._normalized(score, ids), ids]);
  }

  _normalized(score, ids) {
    return score / Math.max(ids.length, 1) ** this.config.lengthPenalty;
  }

  /** The numReturnSequences best texts of each prompt, prompt-major ('' where fewer exist). */
  texts() {
    const { config, tokenizer } = this;
    const beams = config.numBeams;
    const texts = [];
    this.prompts.forEach((_, p) => {
      const finished = [...this.finished[p]];
      if (!this.done[p]) {
        // out of words: the running beams compete with the finished ones
        this.beams[p].forEach((ids, b) => {
          const score = this.scores[p * beams + b];
          if (score > -Infinity) finished.push([this._normalized(score, ids), ids]);
        });
      }
      const best = finished.sort((a, b) => b[0] - a[0]).slice(0, config.numReturnSequences);
      for (const [, ids] of best) {
        const builder = this._builder(p);
        for (const token of ids) {
          builder.add(tokenizer.tokenOf(token));
          if (builder.stopped) break;
        }
        texts.push(builder.text);
      }
      for (let i = best.length; i < config.numReturnSequences; i++) texts.push('');
    });
    return texts;
  }
}
