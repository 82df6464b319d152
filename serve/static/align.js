// Where each scored word came from in the text as typed, so that the score view shows that text, not
// the tokenizer's rendering of it. A backend's words are tokens as the tokenizer reads them
// (runtime/tokenizer.py, web/src/tokenizer.js: NFKC, curly apostrophes as "'", quotation marks and
// control characters dropped, figure references such as "(12)" dropped, lowercased), so each token is
// looked for in a folded copy of the typed text whose every character remembers the typed one it came
// from.

// What the tokenizer drops between words: whitespace, control characters, quotation marks.
const SKIPPED = /[\s\x00-\x1f\x7f-\x9f"“”„‟«»`´]/u;
// runtime/tokenizer.py's _FIGURE_REF without its leading spaces, on folded (lowercased) text; sticky.
const FIGURE_REF = /\(\s*\p{Nd}+[a-z]?'*(?:\s*[,-]\s*\p{Nd}+[a-z]?'*)*\s*\)/uy;
const APOSTROPHES = /[‘’‛′]/gu;

// One character (or a token) as the matching sees it. NFKD rather than the tokenizer's NFKC: a token
// and the typed text then agree however the typed text composed its accents ("é" or "e" + U+0301),
// which one code point at a time NFKC could not tell. The final sigma is the one letter whose lowercase
// depends on its neighbours.
function fold(text) {
  const lower = text.normalize('NFKD').toLowerCase().normalize('NFKD');
  return lower.replace(APOSTROPHES, "'").replace(/ς/gu, 'σ');
}

// The typed text's user-perceived characters (grapheme clusters: a letter and its combining marks, an
// emoji with its modifiers and joiners, a flag), or its code points where the browser cannot segment.
const GRAPHEMES =
  typeof Intl !== 'undefined' && Intl.Segmenter
    ? new Intl.Segmenter(undefined, { granularity: 'grapheme' })
    : null;
function characters(text) {
  return GRAPHEMES ? Array.from(GRAPHEMES.segment(text), (s) => s.segment) : Array.from(text);
}

// The folded copy of `text`, and for each of its UTF-16 units the typed character it came from
// (`starts[k]`..`ends[k]` in `text`): one character may fold to several ("½" to "1⁄2"). Folded a
// grapheme cluster at a time, so that combining marks typed in another order than Unicode's canonical
// one (an Arabic shadda before the vowel) still match the token, which NFKC put in that order, and so
// that tokens read from one cluster ("👍" and its skin tone "🏽") share its typed text.
function foldText(text) {
  let folded = '';
  const starts = [];
  const ends = [];
  let i = 0;
  for (const ch of characters(text)) {
    const piece = fold(ch);
    folded += piece;
    for (let k = 0; k < piece.length; k++) {
      starts.push(i);
      ends.push(i + ch.length);
    }
    i += ch.length;
  }
  return { folded, starts, ends };
}

// Where `token` starts in `folded` at `p`, past what the tokenizer drops; -1 if it does not.
// `figureRefs`: whether the tokenizer dropped figure references (the model file's setting, on by default).
function findAt(folded, token, p, figureRefs) {
  for (;;) {
    FIGURE_REF.lastIndex = p;
    if (figureRefs && FIGURE_REF.test(folded)) p = FIGURE_REF.lastIndex;
    else if (folded.startsWith(token, p)) return p;
    else if (p < folded.length && SKIPPED.test(folded[p])) p += 1;
    else return -1;
  }
}

/**
 * The scored words laid on the text they came from: a list of {start, end, words} in `text` (UTF-16
 * offsets), in order and never overlapping; what lies between two is text the tokenizer dropped
 * (spaces, line breaks, quotation marks, figure references). `words` are a backend's scored words
 * ({word: the token as read, ...}), each in exactly one entry: words read from the same typed
 * characters ("½" is "1", "⁄", "2") share one, and a word not found (normalization the folding does
 * not mirror) takes the typed text between the words around it, or joins the word before it.
 */
export function alignWords(text, words) {
  // the page cannot tell whether the tokenizer drops figure references: either way, the reading that
  // finds more words where they belong is the tokenizer's
  const folding = foldText(text);
  const [dropped, kept] = [true, false].map((figureRefs) => align(text, folding, words, figureRefs));
  return kept.found > dropped.found ? kept.spans : dropped.spans;
}

function align(text, { folded, starts, ends }, words, figureRefs) {
  const spans = [];
  let waiting = []; // words with no text of their own yet: they go with the next span
  let pending = []; // words not found where expected: the typed text up to the next found word is theirs
  let p = 0; // in `folded`: where the next word is looked for
  let found = 0; // words found where the word before ended

  const typedAt = (k) => (k < folded.length ? starts[k] : text.length);
  const add = (start, end, group) => {
    const last = spans[spans.length - 1];
    if (last && start < last.end) {
      last.end = Math.max(last.end, end);
      last.words.push(...group);
    } else {
      spans.push({ start, end, words: [...waiting, ...group] });
      waiting = [];
    }
  };
  // the pending words take the typed text from folded `from` to folded `to`, without its edges' spaces
  const settle = (from, to) => {
    if (!pending.length) return;
    let start = Math.max(typedAt(from), spans.length ? spans[spans.length - 1].end : 0);
    let end = typedAt(to);
    while (start < end && SKIPPED.test(text[start])) start += 1;
    while (end > start && SKIPPED.test(text[end - 1])) end -= 1;
    if (end > start) add(start, end, pending);
    else if (spans.length) spans[spans.length - 1].words.push(...pending);
    else waiting.push(...pending);
    pending = [];
  };

  for (const word of words) {
    const token = fold(String(word.word ?? ''));
    let at = token ? findAt(folded, token, p, figureRefs) : -1;
    if (at >= 0) found += 1;
    // past a word not found, its text stands before this one: look further
    if (at < 0 && token && pending.length) at = folded.indexOf(token, p);
    if (at < 0) {
      pending.push(word);
      continue;
    }
    settle(p, at);
    const end = at + token.length;
    add(starts[at], ends[end - 1], [word]);
    p = end;
  }
  settle(p, folded.length);
  if (waiting.length) spans.push({ start: text.length, end: text.length, words: waiting }); // no text at all
  return { spans, found };
}
