// The page's behaviour: sliders, streamed generation, next-word suggestions, the score view.
// It reaches the model only through `backend` (see api.js for the methods a backend provides).

import { alignWords } from './align.js';

const SUGGESTIONS = 8;
const SUGGEST_DELAY_MS = 120;
const FLOOR_LOGPROB = -12; // the shading's darkest end: probabilities below e^-12 look the same

export function start(backend, doc = document) {
  const $ = (id) => doc.getElementById(id);
  const ui = {
    prompt: $('prompt'),
    output: $('output'),
    said: $('output-said'),
    status: $('status'),
    generate: $('generate'),
    stop: $('stop'),
    keep: $('use-output'),
    suggestions: $('suggestions'),
    sliders: ['temperature', 'words', 'top-k', 'top-p'].map((id) => [$(id), $(`${id}-value`)]),
    seed: $('seed'),
  };
  let backendNow = backend;

  // ------------------------------------------------------------------ tabs
  // one Tab stop, the selected tab's; the arrow keys, Home and End select another (WAI-ARIA's tabs pattern)
  const tabs = [...doc.querySelectorAll('[role="tab"]')];
  const select = (tab) => {
    for (const other of tabs) {
      const selected = other === tab;
      other.setAttribute('aria-selected', String(selected));
      other.tabIndex = selected ? 0 : -1;
      $(other.getAttribute('aria-controls')).hidden = !selected;
    }
  };
  for (const tab of tabs) {
    tab.addEventListener('click', () => select(tab));
    tab.addEventListener('keydown', (event) => {
      const next = moveAmong(tabs, tab, event.key);
      if (!next) return;
      event.preventDefault();
      select(next);
      next.focus();
    });
  }

  // ------------------------------------------------------------------ sliders
  const show = (input, out) => {
    const value = Number(input.value);
    if (input.id === 'top-k') out.textContent = value === 0 ? 'off' : value;
    else if (input.id === 'top-p') out.textContent = value >= 1 ? 'off' : value.toFixed(2);
    else if (input.id === 'temperature') out.textContent = value === 0 ? '0 (greedy)' : value.toFixed(2);
    else out.textContent = value;
    input.setAttribute('aria-valuetext', out.textContent); // "off", not the 0 it stands for
  };
  for (const [input, out] of ui.sliders) {
    show(input, out);
    input.addEventListener('input', () => show(input, out));
  }
  const options = () => ({
    temperature: Number($('temperature').value),
    maxWords: Number($('words').value),
    topK: Number($('top-k').value),
    topP: Number($('top-p').value),
    seed: seedOf(ui.seed.value),
  });

  // A seed as typed: an integer stays exact whatever its size (a BigInt; Number() would round one past
  // 2^53, so the server and the browser would each use another seed than the one shown), anything else
  // goes as a number for the backend to refuse.
  function seedOf(text) {
    if (text === '') return null;
    return /^[0-9]+$/.test(text) ? BigInt(text) : Number(text);
  }

  // ------------------------------------------------------------------ model line
  let suggestionCount = SUGGESTIONS; // fewer where the server caps them (nextword serve --max-suggestions)
  const described = backendNow
    .info()
    .then((info) => {
      // every figure comes from the model file: shown as text (never parsed as HTML), and only where it
      // is the number or list of numbers it should be; a file that says otherwise loses that part
      const count = (n) => Number.isSafeInteger(n) && n > 0;
      const name = doc.createElement('strong');
      name.textContent = String(info.id);
      const parts = [];
      if (count(info.vocabSize)) parts.push(`${info.vocabSize.toLocaleString()} words`);
      if (count(info.layers) && Array.isArray(info.units) && info.units.every(count)) {
        parts.push(`${info.layers} LSTM layer${info.layers > 1 ? 's' : ''} of ${info.units.join(', ')}`);
      }
      if (typeof info.perplexity === 'number' && Number.isFinite(info.perplexity) && info.perplexity > 0) {
        parts.push(`perplexity ${info.perplexity.toFixed(1)}`);
      }
      $('model-line').replaceChildren(name, ...parts.map((part) => ` · ${part}`));
      // the sliders start at the model file's decoding defaults where it has them; a default outside a
      // slider's range widens it, and one between its steps frees the steps, so the slider holds the
      // file's value exactly rather than the nearest one it can show
      const sliders = { temperature: 'temperature', maxWords: 'words', topK: 'top-k', topP: 'top-p' };
      for (const [key, value] of Object.entries(info.defaults ?? {})) {
        const input = $(sliders[key]);
        if (!input || typeof value !== 'number' || !Number.isFinite(value)) continue;
        if (value > Number(input.max)) input.max = String(value);
        if (value < Number(input.min)) input.min = String(value);
        const steps = (value - Number(input.min)) / Number(input.step);
        if (Math.abs(steps - Math.round(steps)) > 1e-9) input.step = 'any';
        input.value = String(value);
        show(input, $(`${sliders[key]}-value`));
      }
      // a server's cap on words per completion (nextword serve --max-words) bounds the slider, so that
      // Generate never asks for more than this server gives
      const cap = info.limits?.maxWords;
      const words = $('words');
      if (Number.isSafeInteger(cap) && cap >= 1 && cap < Number(words.max)) {
        words.max = String(cap);
        if (Number(words.value) > cap) words.value = String(cap);
        show(words, $('words-value'));
      }
      const most = info.limits?.maxSuggestions;
      if (Number.isSafeInteger(most) && most >= 1) suggestionCount = Math.min(SUGGESTIONS, most);
      return info;
    })
    .catch((error) => {
      $('model-line').textContent = `model unavailable: ${error.message}`;
      return null;
    });

  // ------------------------------------------------------------------ generation
  let running = null; // AbortController of the generation in flight
  let generatedFrom = ''; // the prompt the output continues: Keep text keeps both, whatever the box says now
  let generated = '';

  async function generate() {
    if (running) return;
    // a seed the number box cannot read ("abc", "1e400") leaves it empty, which would mean a random seed
    if (ui.seed.validity.badInput) {
      say('error: seed must be a whole number', true);
      ui.seed.setAttribute('aria-invalid', 'true'); // the field at fault, where the keyboard goes to mend it
      ui.seed.focus();
      return;
    }
    running = new AbortController();
    const prompt = ui.prompt.value;
    generatedFrom = prompt;
    generated = '';
    ui.keep.disabled = true; // until the text is done: kept midway, its first words and its rest would part
    ui.said.textContent = ''; // the same words twice (a seed) are still said: a change from nothing
    ui.output.replaceChildren(span('prompt-echo', prompt));
    const words = span('generated', '');
    const caret = span('caret', '');
    ui.output.append(words, caret);
    setBusy(true, 'generating…');
    caret.scrollIntoView({ block: 'nearest' }); // in sight as it starts (on a phone it is below the fold)
    const started = performance.now();
    let pieces = 0;
    try {
      const { finishReason } = await backendNow.generate(
        prompt,
        options(),
        (piece) => {
          // a reader at the newest word is kept there as the text grows, and left alone once they scroll away
          const following = inSight(caret);
          generated += piece;
          pieces += 1;
          words.append(span('word fresh', piece));
          if (following) caret.scrollIntoView({ block: 'nearest' });
        },
        running.signal,
      );
      // a server shutting down ends its streams (end_reason "cancelled"): the text stops short, not done
      if (finishReason === 'cancelled') {
        throw new Error('the server stopped the generation (it is shutting down)');
      }
      const seconds = (performance.now() - started) / 1000;
      const why = { end: 'the model ended the text', stop: 'stop string', length: 'word limit' }[
        finishReason
      ];
      setBusy(false, `${plural(pieces, 'word')} in ${seconds.toFixed(2)} s${why ? ` · ${why}` : ''}`);
    } catch (error) {
      setBusy(
        false,
        error.name === 'AbortError' ? 'stopped' : `error: ${error.message}`,
        error.name !== 'AbortError',
      );
    } finally {
      ui.output.querySelector('.caret')?.remove();
      ui.said.textContent = generated; // said once, after the status line, however many words streamed
      ui.keep.disabled = generated === '';
      running = null;
    }
  }

  function setBusy(busy, message, failed = false) {
    // the button that disables or hides itself hands the keyboard focus to the one that takes over
    // (else it falls to the page's start), without scrolling there: a phone's reader stays at the text
    const focused = doc.activeElement === (busy ? ui.generate : ui.stop);
    ui.generate.disabled = busy;
    ui.stop.hidden = !busy;
    if (focused) (busy ? ui.stop : ui.generate).focus({ preventScroll: true });
    doc.body.toggleAttribute('data-generating', busy); // Stop stays in sight above the text (style.css)
    say(message, failed);
  }

  const inSight = (node) => {
    const { top, bottom } = node.getBoundingClientRect();
    return top >= 0 && bottom <= doc.documentElement.clientHeight + 1;
  };

  // A tap on a chip or on Keep text leaves the focus where it is: the prompt's would raise a phone's
  // keyboard over the next suggestions. A click or a key puts it in the prompt, to type on.
  let pointer = 'mouse';
  doc.addEventListener('pointerdown', (event) => (pointer = event.pointerType), true);
  const typeOn = (event) => (event.detail === 0 || pointer !== 'touch') && ui.prompt.focus();

  function say(message, failed = false) {
    ui.status.textContent = message;
    ui.status.classList.toggle('error', failed);
  }

  ui.generate.addEventListener('click', generate);
  ui.seed.addEventListener('input', () => ui.seed.removeAttribute('aria-invalid'));
  ui.stop.addEventListener('click', () => running?.abort());
  ui.keep.addEventListener('click', (event) => {
    ui.prompt.value = generatedFrom + generated; // the text the output shows
    generated = '';
    ui.keep.disabled = true;
    typeOn(event);
    refreshSuggestions();
  });
  ui.prompt.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      generate();
    }
  });

  // ------------------------------------------------------------------ suggestions
  let suggestTimer = null;
  let suggestRequest = null;

  async function refreshSuggestions() {
    suggestRequest?.abort();
    const controller = (suggestRequest = new AbortController());
    const prompt = ui.prompt.value;
    // an answer about another prompt than the box holds now (changed by a script, without an input event)
    // is dropped: its chips would append to the wrong text
    const stale = () => controller.signal.aborted || ui.prompt.value !== prompt;
    await described; // the server's cap first: a request past it is refused
    if (stale()) return;
    try {
      const suggestions = await backendNow.suggest(prompt, suggestionCount, controller.signal);
      if (stale()) return;
      showChips(suggestions.map((s) => chip(s, prompt)));
    } catch (error) {
      if (error.name === 'AbortError' || stale()) return;
      // said once (role "alert"), not again at every key while the same error stands
      if (ui.suggestions.querySelector('.error')?.textContent === error.message) return;
      const said = span('hint error', error.message);
      said.setAttribute('role', 'alert');
      showChips([said]);
    }
  }

  // The chips are one Tab stop (a toolbar: the arrow keys, Home and End move among them). The keyboard's
  // focus on a chip as they are replaced goes to the first new one, not to the page's start.
  function showChips(nodes) {
    const focused = ui.suggestions.contains(doc.activeElement);
    ui.suggestions.replaceChildren(...nodes);
    const chips = [...ui.suggestions.querySelectorAll('.chip')];
    chips.forEach((c, i) => (c.tabIndex = i === 0 ? 0 : -1));
    if (focused) (chips[0] ?? ui.prompt).focus();
  }
  ui.suggestions.addEventListener('keydown', (event) => {
    const chips = [...ui.suggestions.querySelectorAll('.chip')];
    const next = moveAmong(chips, event.target, event.key);
    if (!next) return;
    event.preventDefault();
    for (const c of chips) c.tabIndex = c === next ? 0 : -1;
    next.focus();
  });

  // A chip follows `prompt`, the text it was suggested after: a click once the box holds another text
  // appends nothing, and shows the chips for that text instead.
  function chip(suggestion, prompt) {
    const button = doc.createElement('button');
    button.className = 'chip';
    button.type = 'button';
    button.dir = 'auto'; // a word of a right-to-left script reads right to left
    button.dataset.text = suggestion.text;
    button.title = `probability ${(suggestion.probability * 100).toFixed(1)}%`;
    button.append(span('chip-word', suggestion.word), span('chip-p', percent(suggestion.probability)));
    button.addEventListener('click', (event) => {
      if (ui.prompt.value !== prompt) {
        refreshSuggestions();
        return;
      }
      ui.prompt.value += suggestion.text;
      typeOn(event);
      refreshSuggestions();
    });
    return button;
  }

  ui.prompt.addEventListener('input', () => {
    suggestRequest?.abort(); // its answer is about a prompt the user has since changed
    clearTimeout(suggestTimer);
    suggestTimer = setTimeout(refreshSuggestions, SUGGEST_DELAY_MS);
  });
  refreshSuggestions();

  // ------------------------------------------------------------------ scoring
  const scoreText = $('score-text');
  const scored = $('scored');
  const summary = $('score-summary');

  let scoring = null; // AbortController of the score in flight: a later Score drops its answer

  async function score() {
    scoring?.abort();
    const controller = (scoring = new AbortController());
    summary.classList.remove('error');
    summary.textContent = 'scoring…';
    try {
      const text = scoreText.value;
      const result = await backendNow.score(text, controller.signal);
      if (controller.signal.aborted) return; // a long text's answer arriving after a newer text's
      // the text as typed, each scored word's shade on the characters it was read from
      const nodes = [];
      let shown = 0;
      for (const { start, end, words } of alignWords(text, result.words)) {
        if (start > shown) nodes.push(doc.createTextNode(text.slice(shown, start)));
        nodes.push(scoredSpan(text.slice(start, end), words));
        shown = end;
      }
      if (shown < text.length) nodes.push(doc.createTextNode(text.slice(shown)));
      showScored(nodes);
      summary.textContent = `${plural(result.words.length, 'word')} · perplexity ${result.perplexity.toFixed(1)} · total log-probability ${result.totalLogprob.toFixed(1)}`;
    } catch (error) {
      if (controller.signal.aborted) return;
      showScored([]); // the words shaded before belong to another text
      summary.textContent = `error: ${error.message}`;
      summary.classList.add('error');
    }
  }
  // Typed characters shaded as their least likely word: one word as a rule, several where they were read
  // from the same characters ("½": "1", "⁄", "2"); the title names each word with its probability.
  function scoredSpan(text, words) {
    const least = words.reduce((a, b) => (b.logprob < a.logprob ? b : a));
    const element = span('scored-word', text);
    const strength = Math.min(1, Math.max(0, least.logprob / FLOOR_LOGPROB)); // 0 likely .. 1 unlikely
    element.style.setProperty('--s', strength.toFixed(3));
    element.dataset.probability = least.probability;
    element.title = words
      .map((w) => `${w.word}: p = ${formatProbability(w.probability)}${w.unknown ? ' (unknown word)' : ''}`)
      .join('\n');
    // the shade in words, for a screen reader to read after the word (style.css shows none of it)
    const unknown = words.some((w) => w.unknown);
    const p = words.map((w) => formatProbability(w.probability)).join(', ');
    element.dataset.said = ` (p = ${p}${unknown ? ', unknown word' : ''})`;
    if (unknown) element.classList.add('unknown');
    return element;
  }

  // The scored text is one Tab stop, the word last moved to; the arrow keys, Home and End move among its
  // words (as among the chips), and the focused word's probabilities show beside the legend: seen from
  // the keyboard, or at a tap, not only in the title a mouse's hover shows. A screen reader reads them in
  // the word itself (data-said), so the line beside the legend is hidden from it, as the legend is.
  const wordShown = $('scored-word-p');
  function showScored(nodes) {
    const focused = scored.contains(doc.activeElement);
    scored.replaceChildren(...nodes);
    wordShown.textContent = '';
    const words = [...scored.querySelectorAll('.scored-word')];
    words.forEach((w, i) => (w.tabIndex = i === 0 ? 0 : -1));
    if (focused) (words[0] ?? scoreText).focus();
  }
  scored.addEventListener('focusin', (event) => {
    const word = event.target.closest('.scored-word');
    if (!word) return;
    for (const w of scored.querySelectorAll('.scored-word')) w.tabIndex = w === word ? 0 : -1;
    wordShown.textContent = word.title.split('\n').join(' · ');
  });
  // a tap focuses the word (where a browser would not focus a span on its own)
  scored.addEventListener('click', (event) => event.target.closest('.scored-word')?.focus());
  scored.addEventListener('keydown', (event) => {
    // right to left, the next word is the one on the left
    const rtl = doc.defaultView.getComputedStyle(scored).direction === 'rtl';
    const flip = { ArrowLeft: 'ArrowRight', ArrowRight: 'ArrowLeft' };
    const key = rtl ? (flip[event.key] ?? event.key) : event.key;
    const next = moveAmong([...scored.querySelectorAll('.scored-word')], event.target, key);
    if (!next) return;
    event.preventDefault();
    next.focus();
  });
  $('score-button').addEventListener('click', score);
  scoreText.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      score();
    }
  });

  return {
    generate,
    score,
    refreshSuggestions,
    described, // resolves to the first backend's info(), or null where it failed
    // Swap the backend (e.g. to a model running in this browser); the page keeps its state.
    setBackend(next) {
      backendNow = next;
      refreshSuggestions();
    },
  };

  function span(className, text) {
    const element = doc.createElement('span');
    element.className = className;
    element.textContent = text;
    return element;
  }
}

// The item an arrow key, Home or End moves to from `item` among `items`; null for another key.
function moveAmong(items, item, key) {
  const i = items.indexOf(item);
  if (i < 0) return null;
  const to = { ArrowRight: i + 1, ArrowDown: i + 1, ArrowLeft: i - 1, ArrowUp: i - 1, Home: 0, End: -1 }[key];
  if (to === undefined) return null;
  return items[(to + items.length) % items.length];
}

function plural(count, noun) {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

function percent(p) {
  return p >= 0.095 ? `${Math.round(p * 100)}%` : `${(p * 100).toFixed(1)}%`;
}

function formatProbability(p) {
  return p >= 0.001 ? p.toFixed(3) : p.toExponential(1);
}
