// Every abstract of the reference corpus through the bundled tokenizer: ids and decoded text as Python's.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Tokenizer } from '../src/index.js';
import { Mismatches, NO_REFERENCE, reference } from './reference.js';

const ref = reference();

test(
  'reference-corpus abstracts: the same ids and the same decoded text',
  { skip: !ref?.abstracts && NO_REFERENCE },
  () => {
    const tok = Tokenizer.fromJson(ref.tokenizer_json);
    const bad = new Mismatches('abstracts');
    let words = 0;
    for (const { text, ids, decoded } of ref.abstracts) {
      const got = tok.encode(text);
      words += got.length;
      const same =
        got.length === ids.length && got.every((id, i) => id === ids[i]) && tok.decode(got) === decoded;
      bad.check(same, { text: text.slice(0, 300), got: got.slice(0, 40), want: ids.slice(0, 40) });
    }
    assert.equal(bad.items.length, 0, bad.message);
    console.log(`${bad.checked} abstracts (${words} tokens): identical ids and decoded text`);
  },
);
