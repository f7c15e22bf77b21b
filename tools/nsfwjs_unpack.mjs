// Unpacks nsfwjs's bundled Keras InceptionV3 into TensorFlow.js's plain layers format.
//
// nsfwjs@4.4.0 (MIT) ships dist/models/inception_v3/ as UMD modules: model.min.js exports the
// layers-model JSON (modelTopology + weightsManifest) and group1-shardNof6.min.js each export
// a shard as base64. This writes OUT/model.json and the binary shards it names, the format
// `tensorflowjs_converter --input_format keras` writes, which tools/convert_keras_tfjs.py
// reads, and checks that the shards hold exactly the bytes the manifest needs.
//
// Usage: node tools/nsfwjs_unpack.mjs PACKAGE_DIR OUT_DIR
import { createRequire } from 'module';
import fs from 'fs';
import path from 'path';

const [packageDir, outDir] = process.argv.slice(2);
if (!packageDir || !outDir) {
  console.error('usage: node tools/nsfwjs_unpack.mjs PACKAGE_DIR OUT_DIR');
  process.exit(2);
}
const modelDir = path.resolve(packageDir, 'dist/models/inception_v3');
const require = createRequire(path.join(modelDir, 'noop.js'));
const fail = (message) => {
  console.error(`nsfwjs_unpack: ${message}`);
  process.exit(1);
};
if (!fs.existsSync(path.join(modelDir, 'model.min.js'))) fail(`'${modelDir}/model.min.js' is missing: is ${packageDir} nsfwjs@4.4.0?`);
const model = require('./model.min.js');
if (!model.modelTopology || !Array.isArray(model.weightsManifest)) fail(`'${modelDir}/model.min.js' exports no layers model`);

const bytesPerValue = { float32: 4, int32: 4, uint16: 2, uint8: 1 };
fs.mkdirSync(outDir, { recursive: true });
for (const group of model.weightsManifest) {
  const needed = group.weights.reduce((sum, w) => {
    const count = w.shape.reduce((a, b) => a * b, 1);
    return sum + count * bytesPerValue[w.quantization ? w.quantization.dtype : w.dtype];
  }, 0);
  let total = 0;
  for (const name of group.paths) {
    const file = path.join(modelDir, `${name}.min.js`);
    if (!fs.existsSync(file)) fail(`shard '${file}' is missing`);
    const encoded = require(`./${name}.min.js`);
    if (typeof encoded !== 'string') fail(`'${file}' exports no base64 string`);
    const bytes = Buffer.from(encoded, 'base64');
    fs.writeFileSync(path.join(outDir, name), bytes);
    total += bytes.length;
  }
  if (total !== needed) fail(`shards ${group.paths.join(', ')} hold ${total} bytes; the manifest needs ${needed}`);
  console.log(`${group.paths.length} shards, ${total} bytes, as the manifest needs`);
}
fs.writeFileSync(path.join(outDir, 'model.json'),
  JSON.stringify({ format: 'layers-model', modelTopology: model.modelTopology, weightsManifest: model.weightsManifest }));
console.log(`wrote ${path.join(outDir, 'model.json')}`);
