// Decoding's spacing and sentence capitals, as runtime/spacing.py's: which tokens are written without a
// space between them, and which token begins a sentence.

import { CLASS } from './unicode.js';

// Glued to the token before: closing punctuation (Arabic, Urdu and Devanagari marks too) and what
// continues an emoji or a word (skin tones, variation selectors, joiners, the keycap mark); glued to the
// token after: an opening parenthesis, ¿, ¡ and the joiners.
const NO_SPACE_BEFORE = new Set([
  ...'.,;:)?!\u060c\u061b\u061f\u06d4\u0964\u0965\u200c\u200d\u20e3',
  ...codePoints(0xfe00, 0xfe10),
  ...codePoints(0x1f3fb, 0x1f400),
]);
const NO_SPACE_AFTER = new Set([...'(\u00bf\u00a1\u200c\u200d']);
// A token that begins with a combining mark or a tag character continues the character before it (a
// keycap's "\ufe0f\u20e3" after "#", the tags of a subdivision flag after the black flag).
const CONTINUES = new RegExp(`^[${CLASS.mark}\\u{e0020}-\\u{e007f}]`, 'u');
const SENTENCE_END = new Set(['.', '?', '!']);
// Initials: single letters (word characters but digits and "_") joined by dots, "e.g", "u.s.a"; the dot
// after them ends no sentence. A percent sign is glued to a number before it ("90%").
const LETTER = `(?:(?![${CLASS.digit}_])[${CLASS.word}])`;
const INITIALS = new RegExp(`^${LETTER}(?:\\.${LETTER})+$`, 'u');
const ENDS_IN_DIGIT = new RegExp(`[${CLASS.digit}]$`, 'u');
// Marks that pass a sentence start on to the token after them ("(It works.)", "¿Por qué?", "(Done.) Then").
const CARRY_START = new Set(['(', ')', '\u00bf', '\u00a1']);

/** Whether `token` is written right after `previous` (null: the text's start), no space. */
export function glued(token, previous) {
  return (
    previous === null ||
    NO_SPACE_AFTER.has(previous) ||
    NO_SPACE_BEFORE.has(token) ||
    (isRegionalIndicator(token) && isRegionalIndicator(previous)) ||
    (token === '%' && ENDS_IN_DIGIT.test(previous)) ||
    CONTINUES.test(token)
  );
}

/** Whether `token` ends a sentence: `.`, `?` or `!`, but not the dot that closes initials, `previous`
 * being single letters joined by dots (e.g., i.e., U.S.: the tokenizer keeps their last dot apart). */
export function endsSentence(token, previous = null) {
  return SENTENCE_END.has(token) && !(token === '.' && previous !== null && INITIALS.test(previous));
}

/** Whether the token after `token` begins a sentence, `starts` saying whether `token` did and
 * `previous` being the token before it: after a sentence end (endsSentence), or after a parenthesis,
 * ¿ or ¡ where a sentence began. */
export function startsAfter(token, starts, previous = null) {
  return endsSentence(token, previous) || (starts && CARRY_START.has(token));
}

/** Whether `token` passes a sentence start on to the token after it: (, ), ¿, ¡. */
export function carriesStart(token) {
  return CARRY_START.has(token);
}

/** Whether `token` is one regional indicator letter (half of a flag: two make one). */
function isRegionalIndicator(token) {
  const code = token.codePointAt(0);
  return code >= 0x1f1e6 && code < 0x1f200 && token.length === 2;
}

/** The characters from `first` up to (not including) `end`, as strings. */
function codePoints(first, end) {
  return Array.from({ length: end - first }, (_, i) => String.fromCodePoint(first + i));
}
