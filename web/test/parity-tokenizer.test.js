// The tokenizer against the Python runtime's: ids, tokens, decoded text, pieces, from_json errors.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { Tokenizer, TokenizerConfig } from '../src/index.js';
import { tokenize } from '../src/tokenizer.js';
import { Mismatches, NO_REFERENCE, reference } from './reference.js';

const ref = reference()?.tokenizer;

describe('tokenizer parity with Python', { skip: !ref && NO_REFERENCE }, () => {
  test('test strings under five tokenizers: tokens, ids, decoded text, pieces', () => {
    const bad = new Mismatches('strings');
    for (const { json, rows } of ref.cases) {
      const tok = Tokenizer.fromJson(json);
      for (const row of rows) {
        const ids = tok.encode(row.text);
        const tokens = ids.map((i) => tok.tokenOf(i));
        const got = {
          tokens: tok.tokenize(row.text),
          ids,
          decoded: tok.decode(ids),
          decoded_with_ends: tok.decode([2, ...ids, 2, ...ids.slice(0, 3), 0]),
          pieces_after_open: [...tok.pieces(tokens, '(')],
          pieces_after_period: [...tok.pieces(tokens, '.')],
          begins_sentence: tokens
            .map((_, k) => k)
            .concat(tokens.length)
            .map((k) =>
              Tokenizer.beginsSentence(
                tokens
                  .slice(0, k)
                  .flatMap((t) => ['<pad>', t])
                  .reverse(),
              ),
            ),
        };
        const want = { ...row };
        delete want.text;
        bad.check(JSON.stringify(got) === JSON.stringify(want), { text: row.text, got, want });
      }
    }
    assert.equal(bad.items.length, 0, bad.message);
    assert.ok(bad.checked >= 5 * 30, `only ${bad.checked} strings compared`);
  });

  test('lone surrogates tokenize as Python does', () => {
    for (const { text, tokens } of ref.lone_surrogates) {
      assert.deepEqual(tokenize(text, new TokenizerConfig()), tokens, JSON.stringify(text));
    }
  });

  test("malformed tokenizer JSON is refused with Python's messages", () => {
    const bad = new Mismatches('malformed tokenizers');
    for (const { json, message } of ref.from_json_errors) {
      let got = null;
      try {
        Tokenizer.fromJson(json);
      } catch (error) {
        got = error.message;
      }
      bad.check(got === message, { json: json.slice(0, 200), got, want: message });
    }
    assert.equal(bad.items.length, 0, bad.message);
  });
});
