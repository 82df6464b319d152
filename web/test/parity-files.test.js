// Damaged and doctored model files: refused (or accepted) exactly as the Python runtime does, with its
// messages; the fixes they suggest name this package's options instead of Python's LoadLimits.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { checkModelFile, load } from '../src/index.js';
import { resolveLimits } from '../src/model-check.js';
import { Mismatches, NO_REFERENCE, reference } from './reference.js';

const ref = reference();

const HINTS = [
  ['load(..., limits=LoadLimits(max_file_bytes=...))', 'load(..., { limits: { maxFileBytes: ... } })'],
  [
    'load(..., limits=LoadLimits(max_tokenizer_bytes=...))',
    'load(..., { limits: { maxTokenizerBytes: ... } })',
  ],
  ['LoadLimits(ir_versions=...)', '{ limits: { irVersions: ... } }'],
  ['LoadLimits(opset_versions=...)', '{ limits: { opsetVersions: ... } }'],
  ['LoadLimits(allowed_ops=...)', '{ limits: { allowedOps: ... } }'],
];
const ORT_REFUSAL = 'could not be loaded as an ONNX model: [ONNXRuntimeError]';

function inJavaScript(message) {
  return message === null ? null : HINTS.reduce((text, [py, js]) => text.replace(py, js), message);
}

function jsLimits(limits) {
  const names = {
    max_file_bytes: 'maxFileBytes',
    max_tokenizer_bytes: 'maxTokenizerBytes',
    ir_versions: 'irVersions',
    opset_versions: 'opsetVersions',
    allowed_ops: 'allowedOps',
  };
  return Object.fromEntries(Object.entries(limits).map(([k, v]) => [names[k], v]));
}

describe('model files: the same refusals as Python', { skip: !ref?.files && NO_REFERENCE }, () => {
  test('doctored files through load()', async () => {
    const bad = new Mismatches('files');
    for (const c of ref.files) {
      let got = null;
      try {
        const model = await load(Buffer.from(c.data, 'base64'), { limits: jsLimits(c.limits) });
        await model.release();
      } catch (error) {
        got = error.message;
      }
      const want = inJavaScript(c.message);
      const bothOrt = want?.includes(ORT_REFUSAL) && got?.includes('could not be loaded as an ONNX model:');
      bad.check(bothOrt || got === want, { name: c.name, got, want });
    }
    assert.equal(bad.items.length, 0, bad.message);
    assert.ok(ref.files.filter((c) => c.message !== null).length > 40);
  });

  test('truncated and bit-flipped files through the checks', () => {
    const bad = new Mismatches('damaged files');
    const limits = resolveLimits();
    for (const c of ref.checks) {
      let got = null;
      try {
        checkModelFile('<model bytes>', Buffer.from(c.data, 'base64'), limits);
      } catch (error) {
        got = error.message;
      }
      bad.check(got === inJavaScript(c.message), { got, want: c.message });
    }
    assert.equal(bad.items.length, 0, bad.message);
    const refused = ref.checks.filter((c) => c.message !== null).length;
    console.log(`damaged files: ${bad.checked} compared, ${refused} refused by both with the same message`);
  });
});
