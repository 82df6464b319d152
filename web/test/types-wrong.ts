// Must NOT compile: the types catch these mistakes (checked by test/unit.test.js).
import { load, NextWordModel, Tokenizer, withoutSizeCaps } from 'nextword-web';

async function main(): Promise<void> {
  const model = await load('model.onnx');
  await model.generate(5);
  await model.generate('a', { max_words: 5 });
  await model.generate('a', { temperature: 'hot' });
  const word: number = (await model.nextWords('a'))[0].word;
  await model.generate('a', { cache: { theta: 1, mix: 0.1, window: 8 } });
  await model.score('a b', { cache: 'on' });
  await model.score('a b', { cache: { theta: 1, mix: 0.1, gate: [1, 2], window: 8 } });
  await model.score('a b', { cache: { theta: 1, gate: [1, 2], similarity: 'euclid', window: 8 } });
  withoutSizeCaps({ maxFileBytes: '1 MiB' });
  new NextWordModel(); // load() makes one
  new Tokenizer(['a'], undefined, 6); // no such tokenizer format
  await load('model.onnx', { signal: 'stop' }); // an AbortSignal
  console.log(word);
}
main();
