// Options that conflict with a model file's decoding defaults (a file that beam-searches, or writes
// several texts, or caps max_words), against the Python runtime: generate() and stream() refuse them with
// Python's messages, which name a value the caller never set as the file's default.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { load } from '../src/index.js';
import { camelOptions, NO_REFERENCE, reference } from './reference.js';

const ref = reference();

/** Python's message with its option names as this package writes them. */
function inJavaScript(message) {
  if (message === null) return null;
  return message.replace(/\b[a-z]+(?:_[a-z]+)+\b/g, (name) =>
    name.replace(/_([a-z])/g, (_, c) => c.toUpperCase()),
  );
}

describe(
  "conflicts with a file's decoding defaults: Python's messages",
  { skip: !ref?.files && NO_REFERENCE },
  () => {
    const models = new Map();
    before(async () => {
      for (const file of ref.files) models.set(file.path, await load(file.path));
    });
    after(async () => {
      for (const model of models.values()) await model.release();
    });

    test('generate() and stream() refuse as Python refuses', async () => {
      for (const file of ref.files) {
        const model = models.get(file.path);
        assert.equal(model.info.generation.numBeams, file.generation.num_beams ?? 1);
        for (const c of file.cases) {
          let got = null;
          try {
            if (c.call === 'stream') model.stream('the network', camelOptions(c.options));
            else await model.generate('the network', camelOptions(c.options));
          } catch (error) {
            got = error.message;
          }
          assert.equal(
            got,
            inJavaScript(c.message),
            `${JSON.stringify(file.generation)} ${c.call} ${JSON.stringify(c.options)}`,
          );
        }
      }
    });
  },
);
