// Generation options and their validation: nextword/runtime/generation.py's GenerationConfig, with the
// same rules in the same order. Options passed to the JavaScript API are camelCase and their messages
// show JavaScript values; defaults read from a model file are snake_case and their messages are exactly
// Python's (they describe the file, which Python reads too).

import { NextwordError } from './errors.js';
import { commas, PyTuple, pyHead, pyLen, pyRepr, pySorted, pyStr } from './pyrepr.js';

export const MAX_WORDS = 10_000; // each word is one session call, so this bounds a call's time
export const MAX_BATCH = 256; // rows run at once: prompts x numReturnSequences
// Every option is bounded, in calls and in a model file's defaults alike (the Python runtime's bounds).
export const MIN_TEMPERATURE = 0.01; // below, sampling is greedy in all but name
export const MAX_TEMPERATURE = 100; // above, it picks words uniformly
export const MAX_PENALTY = 100; // repetitionPenalty from 1/100 to 100
export const MAX_LENGTH_PENALTY = 10; // |lengthPenalty|
export const MAX_TOP_K = 1_000_000; // the largest vocabulary a tokenizer may have
const TOP_K_OFF = '0: no top-k filtering'; // what the range in topK's message says of 0
export const MAX_NGRAM = 100; // noRepeatNgramSize
export const MAX_STOP_STRINGS = 16;
export const MAX_STOP_CHARS = 64; // characters per stop string
// Whose decoding defaults a model's are, as refusals say it (Python's FILE_DEFAULTS): "numBeams=4 is this
// model file's decoding default" where a value the caller never set conflicts with one the caller did.
export const FILE_DEFAULTS = "this model file's";

/** [JavaScript name, Python name, default] for every option, in GenerationConfig's field order. */
export const FIELDS = Object.freeze([
  ['maxWords', 'max_words', 50],
  ['minWords', 'min_words', 0],
  ['temperature', 'temperature', 1.0],
  ['topK', 'top_k', null],
  ['topP', 'top_p', null],
  ['repetitionPenalty', 'repetition_penalty', 1.0],
  ['noRepeatNgramSize', 'no_repeat_ngram_size', 0],
  ['stop', 'stop', Object.freeze([])], // frozen: shared by every call and exported
  ['stopAtEnd', 'stop_at_end', true],
  ['allowUnknown', 'allow_unknown', false],
  ['numReturnSequences', 'num_return_sequences', 1],
  ['numBeams', 'num_beams', 1],
  ['lengthPenalty', 'length_penalty', 1.0],
  ['seed', 'seed', null],
  ['cache', 'cache', false], // mix in the file's continuous cache (src/cache.js)
]);
const JS_NAMES = FIELDS.map(([js]) => js);
const PY_NAME = Object.fromEntries(FIELDS.map(([js, py]) => [js, py]));

/** The defaults of every option (GenerationConfig()). */
export const DEFAULTS = Object.freeze(Object.fromEntries(FIELDS.map(([js, , value]) => [js, value])));
// The integer defaults as Python ints (bigint), so that a file's values are judged next to them as Python does.
const PY_INT_DEFAULTS = {
  maxWords: 50n,
  minWords: 0n,
  noRepeatNgramSize: 0n,
  numReturnSequences: 1n,
  numBeams: 1n,
};

// How values are judged and shown: JavaScript values for the API, Python's for a model file's JSON.
// (a plain object as JSON, as a list is: String() gave "[object Object]"; a bigint in either as a number)
const jsShow = (value) => {
  const proto = value !== null && typeof value === 'object' ? Object.getPrototypeOf(value) : undefined;
  if (typeof value === 'string' || Array.isArray(value) || proto === Object.prototype || proto === null) {
    try {
      const text = JSON.stringify(value, (_, x) => (typeof x === 'bigint' ? Number(x) : x));
      return text.length <= 200 ? text : `${text.slice(0, 197)}...`;
    } catch {
      return 'an object that JSON cannot show'; // one that holds itself
    }
  }
  return proto ? `a ${proto.constructor?.name ?? 'object'}` : String(value);
};
const JS_STYLE = {
  name: (field) => field,
  show: jsShow,
  shown: jsShow,
  plain: (value) => String(value),
  isInt: (v) => typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v)),
  isReal: (v) => typeof v === 'bigint' || typeof v === 'number',
  bools: 'true or false',
};
const PY_STYLE = {
  name: (field) => PY_NAME[field],
  show: pyRepr,
  // Python's generation.shown: the repr cut to 60 characters (a file can hold a 400-digit number)
  shown: (value) => {
    const text = pyRepr(value);
    return pyLen(text) <= 60 ? text : `${pyHead(text, 57)}...`;
  },
  plain: pyStr,
  isInt: (v) => typeof v === 'bigint',
  isReal: (v) => typeof v === 'bigint' || typeof v === 'number',
  bools: 'True or False',
};

/** What to write for the unknown option names a user is likely to try: Python's names, a signal. */
function unknownHint(unknown) {
  const hints = [];
  const python = unknown.filter((k) => JS_NAMES.some((js) => PY_NAME[js] === k && js !== k));
  if (python.length) {
    const named = python.map((k) => `${JS_NAMES.find((js) => PY_NAME[js] === k)} for ${k}`);
    hints.push(`options are camelCase: ${named.join(', ')}`);
  }
  if (unknown.includes('signal')) {
    hints.push('a generation takes no signal: to stop one early, use stream() and leave its loop');
  }
  return hints.length ? ` (${hints.join('; ')})` : '';
}

/**
 * `base` (a validated config) with the JavaScript `options` replacing its fields; unknown names and
 * invalid values throw NextwordError. Options left undefined keep the base value. `origin` says whose
 * defaults `base` holds (FILE_DEFAULTS: a model file's): a refusal of options that conflict then says
 * which of the values come from `base`, "(numBeams=4 is this model file's decoding default)", as
 * Python's GenerationConfig.from_options(..., origin=...) does.
 */
export function resolveOptions(base, options = {}, origin = null) {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new NextwordError(`options must be an object, got ${JS_STYLE.show(options)}`);
  }
  const proto = Object.getPrototypeOf(options);
  if (proto !== Object.prototype && proto !== null) {
    // a Map's entries, inherited fields and getters are not its own keys: they would be ignored
    const kind = options.constructor?.name ?? 'an object with a prototype';
    throw new NextwordError(`options must be a plain object such as { maxWords: 20 }, got ${kind}`);
  }
  const unknown = Object.keys(options)
    .filter((k) => !JS_NAMES.includes(k))
    .sort();
  if (unknown.length) {
    throw new NextwordError(
      `unknown generation option(s) ${JSON.stringify(unknown)}; valid options are ${JSON.stringify([...JS_NAMES].sort())}${unknownHint(unknown)}`,
    );
  }
  const merged = { ...base };
  // numBeams > 1 asked for drops the base's sampling options left out (Python's from_options): a model
  // file's topK applies to sampling, not to a beam search asked for
  if (JS_STYLE.isInt(options.numBeams) && options.numBeams > 1) {
    merged.topK = null;
    merged.topP = null;
    if (merged.temperature !== 0 && merged.temperature !== 1) merged.temperature = 1;
  }
  for (const [key, value] of Object.entries(options)) if (value !== undefined) merged[key] = value;
  // a maxWords below the base's minWords lowers that minWords to it when it is not given (Python's
  // GenerationConfig.from_options): a cap asked for wins over a default
  const cap = options.maxWords;
  if (options.minWords === undefined && JS_STYLE.isInt(cap) && cap >= 0 && cap < merged.minWords) {
    merged.minWords = cap;
  }
  const given = Object.keys(options).filter((key) => options[key] !== undefined);
  return validate(
    merged,
    JS_STYLE,
    origin === null ? noNote : (names) => defaultsNote(base, names, given, origin),
  );
}

/**
 * The values among `names` that a refusal takes from `defaults` (those `given`, the options the caller
 * set, leave out, and that `defaults` changes from DEFAULTS), said as `origin`'s: "numBeams=4 is this
 * model file's decoding default"; '' where there are none (Python's defaults_note).
 */
function defaultsNote(defaults, names, given, origin) {
  const taken = names
    .filter((name) => !given.includes(name) && defaults[name] !== DEFAULTS[name])
    .map((name) => `${name}=${JS_STYLE.show(defaults[name])}`);
  if (!taken.length) return '';
  if (taken.length === 1) return `${taken[0]} is ${origin} decoding default`;
  return `${taken.slice(0, -1).join(', ')} and ${taken.at(-1)} are ${origin} decoding defaults`;
}
const noNote = () => '';

/**
 * stream()'s config: `options` over `base` (the file's defaults) for one prompt string and one text, or
 * NextwordError. NextWordModel.stream and WorkerModel.stream both check with it when they are called.
 */
export function streamOptions(base, prompt, options = {}) {
  const config = resolveOptions(base, options, FILE_DEFAULTS);
  if (typeof prompt !== 'string')
    throw new NextwordError(`stream() takes one prompt string, got ${typeName(prompt)}`);
  if (config.numReturnSequences !== 1 || config.numBeams !== 1) {
    const given = Object.keys(options).filter((key) => options[key] !== undefined);
    const note = defaultsNote(base, ['numReturnSequences', 'numBeams'], given, FILE_DEFAULTS);
    throw new NextwordError(
      'stream() produces one text: numReturnSequences and numBeams must be 1 ' +
        `(got ${config.numReturnSequences} and ${config.numBeams}${note ? `; ${note}` : ''})`,
    );
  }
  return config;
}

/** How messages name a JavaScript value's type: null, array, string, object... */
export function typeName(value) {
  return value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
}

/**
 * The decoding defaults a model file stores (nextword.generation, a Map from src/pyjson.js), validated
 * as Python's GenerationConfig.from_options(**data); throws NextwordError with Python's message.
 */
export function optionsFromMetadata(data) {
  const unknown = pySorted([...data.keys()].filter((k) => !Object.values(PY_NAME).includes(k)));
  if (unknown.length) {
    throw new NextwordError(
      `unknown generation option(s) ${pyRepr(unknown)}; valid options are ${pyRepr(pySorted(Object.values(PY_NAME)))}`,
    );
  }
  const merged = { ...DEFAULTS, ...PY_INT_DEFAULTS };
  for (const [js, py] of FIELDS) {
    if (!data.has(py)) continue;
    const value = data.get(py);
    merged[js] = py === 'stop' && Array.isArray(value) ? new PyTuple(value) : value; // Python makes it a tuple
  }
  return validate(merged, PY_STYLE);
}

/** The options that differ from DEFAULTS (GenerationConfig.changes()). */
export function changes(config) {
  return Object.fromEntries(
    FIELDS.filter(([js, , value]) => JSON.stringify(config[js]) !== JSON.stringify(value)).map(([js]) => [
      js,
      config[js],
    ]),
  );
}

/** `c` checked as GenerationConfig checks itself; `note(names)`: what a refusal of options that conflict,
 * named by `names`, adds on where their values came from ('' for nothing: resolveOptions's `origin`). */
function validate(c, style, note = noNote) {
  const fail = (message) => {
    throw new NextwordError(message);
  };
  // a conflict's refusal, with `note` on the values of `names` in its closing remark (Python's OptionConflict)
  const conflict = (message, names, aside = '') => {
    const noted = note(names);
    const remark = [aside, noted].filter(Boolean).join('; ');
    fail(remark ? `${message} (${remark})` : message);
  };
  const checkInt = (field, low, high) => {
    const value = c[field];
    const name = style.name(field);
    if (!style.isInt(value)) fail(`${name} must be an integer, got ${style.show(value)}`);
    if (value < low || (high !== null && value > high)) {
      const allowed = high !== null ? `in ${low}..${high}` : `an integer >= ${low}`;
      fail(`${name} must be ${allowed}, got ${style.plain(value)}`);
    }
  };
  const checkReal = (field, { low, lowOpen, high = Infinity, note = '' }) => {
    const value = c[field];
    const number = Number(value);
    let ok = style.isReal(value) && Number.isFinite(number);
    ok = ok && (lowOpen ? number > low : number >= low) && number <= high;
    if (!ok) {
      const lower = low === -Infinity ? '' : `${lowOpen ? '>' : '>='} ${low}`;
      const upper = high === Infinity ? '' : `<= ${high}`;
      const bounds = [lower, upper].filter(Boolean).join(' and ');
      const detail = note ? ` (${note})` : '';
      fail(
        `${style.name(field)} must be a finite number${bounds ? ` ${bounds}` : ''}${detail}, got ${style.shown(value)}`,
      );
    }
  };
  checkInt('maxWords', 0, MAX_WORDS);
  checkInt('minWords', 0, null);
  if (c.minWords > c.maxWords) {
    const max = style.name('maxWords');
    conflict(
      `${style.name('minWords')} must be at most \`${max}\` (${c.maxWords}), got ${style.plain(c.minWords)}: ` +
        `raise \`${max}\` too`,
      ['minWords', 'maxWords'],
    );
  }
  checkReal('temperature', { low: 0, lowOpen: false, note: '0 is greedy' });
  const temperature = Number(c.temperature);
  if (temperature && !(MIN_TEMPERATURE <= temperature && temperature <= MAX_TEMPERATURE)) {
    fail(
      `${style.name('temperature')} must be 0 (greedy) or from ${MIN_TEMPERATURE} to ${MAX_TEMPERATURE}, got ` +
        `${style.show(c.temperature)}: below ${MIN_TEMPERATURE} sampling is greedy in all but name (use 0), ` +
        `above ${MAX_TEMPERATURE} it picks words uniformly`,
    );
  }
  if (c.topK !== null && style.isInt(c.topK) && !(c.topK >= 0 && c.topK <= MAX_TOP_K)) {
    fail(`${style.name('topK')} must be in 0..${MAX_TOP_K} (${TOP_K_OFF}), got ${style.shown(c.topK)}`);
  }
  if (c.topK !== null) checkInt('topK', 0, MAX_TOP_K); // the message for a value that is no integer
  // 0 is off, as null is (Hugging Face's top_k=0): it turns a model file's topK off
  const topK = c.topK === null || Number(c.topK) === 0 ? null : Number(c.topK);
  if (c.topP !== null) checkReal('topP', { low: 0, lowOpen: true, high: 1 });
  // 1 keeps every word: off, as null is (sampling never cut at 1); it turns a model file's topP off
  const topP = c.topP === null || Number(c.topP) === 1 ? null : Number(c.topP);
  checkReal('repetitionPenalty', {
    low: 1 / MAX_PENALTY,
    lowOpen: false,
    high: MAX_PENALTY,
    note: '1 is off',
  });
  checkInt('noRepeatNgramSize', 0, MAX_NGRAM);
  const stopItems = typeof c.stop === 'string' ? [c.stop] : c.stop instanceof PyTuple ? c.stop.items : c.stop;
  if (Array.isArray(stopItems) && stopItems.length > MAX_STOP_STRINGS) {
    fail(`stop holds ${commas(stopItems.length)} strings; at most ${MAX_STOP_STRINGS} are allowed`);
  }
  if (!Array.isArray(stopItems) || !stopItems.every((s) => typeof s === 'string' && s)) {
    // a tuple (what Python makes of a list) is shown as the list it was written as
    const written = c.stop instanceof PyTuple ? [...c.stop.items] : c.stop;
    const text = style.show(written);
    fail(
      `stop must be a string or a list of non-empty strings, got ${pyLen(text) <= 200 ? text : `${pyHead(text, 197)}...`}`,
    );
  }
  const long = stopItems.find((s) => pyLen(s) > MAX_STOP_CHARS);
  if (long !== undefined) {
    fail(
      `stop string ${style.show(pyHead(long, 40))}... is ${commas(pyLen(long))} characters; at most ` +
        `${MAX_STOP_CHARS} are allowed`,
    );
  }
  for (const field of ['stopAtEnd', 'allowUnknown', 'cache']) {
    if (typeof c[field] !== 'boolean') {
      // settings of one's own are what nextWords, suggest and score take: generate uses the file's
      const hint =
        field === 'cache' && style === JS_STYLE && c.cache !== null && typeof c.cache === 'object'
          ? " (generate and stream use the file's cache settings; settings of your own go to nextWords, " +
            'suggest and score)'
          : '';
      fail(`${style.name(field)} must be ${style.bools}, got ${style.show(c[field])}${hint}`);
    }
  }
  checkInt('numReturnSequences', 1, MAX_BATCH);
  checkInt('numBeams', 1, MAX_BATCH);
  checkReal('lengthPenalty', { low: -MAX_LENGTH_PENALTY, lowOpen: false, high: MAX_LENGTH_PENALTY });
  if (c.seed !== null) checkInt('seed', 0, null);
  if (typeof c.seed === 'number' && !Number.isSafeInteger(c.seed)) {
    // 2**53 + 1 arrives as 2**53: the text would be another seed's
    // written out in digits: 1e21 would make the invalid literal 1e+21n
    const digits = BigInt(c.seed).toString();
    fail(`seed ${digits} is past 2**53 - 1, where a number is not exact; pass it as a bigint (${digits}n)`);
  }
  if (c.numBeams > 1) {
    const sampling = ['topK', 'topP'].filter((field) => (field === 'topK' ? topK : topP) !== null);
    if (Number(c.temperature) !== 0 && Number(c.temperature) !== 1) sampling.push('temperature');
    if (sampling.length) {
      const conflicts = sampling.map((field) => `${style.name(field)}=${style.show(c[field])}`);
      conflict(
        `${style.name('numBeams')}=${c.numBeams} searches deterministically and cannot be combined with the ` +
          `sampling options ${conflicts.join(', ')}; drop them or set ${style.name('numBeams')}=1`,
        ['numBeams', ...sampling],
      );
    }
    if (c.numReturnSequences > c.numBeams) {
      conflict(
        `${style.name('numReturnSequences')}=${c.numReturnSequences} must be <= ${style.name('numBeams')}=` +
          `${c.numBeams}`,
        ['numReturnSequences', 'numBeams'],
        'beam search returns its best beams',
      );
    }
  }
  return Object.freeze({
    maxWords: Number(c.maxWords),
    minWords: Number(c.minWords),
    temperature: Number(c.temperature),
    topK,
    topP,
    repetitionPenalty: Number(c.repetitionPenalty),
    noRepeatNgramSize: Number(c.noRepeatNgramSize),
    stop: Object.freeze([...stopItems]),
    stopAtEnd: c.stopAtEnd,
    allowUnknown: c.allowUnknown,
    numReturnSequences: Number(c.numReturnSequences),
    numBeams: Number(c.numBeams),
    lengthPenalty: Number(c.lengthPenalty),
    seed: c.seed === null ? null : BigInt(c.seed),
    cache: c.cache,
  });
}
