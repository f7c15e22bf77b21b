// Reference outputs of nsfwjs's Keras InceptionV3 computed by TensorFlow.js itself, for the
// golden check of tools/convert_keras_tfjs.py's conversion: the 5-class probabilities at 299
// and the 2048-d pooled features (mixed10, global average pool) at 299 and 160.
//
// Setup (pure JavaScript): npm install @tensorflow/tfjs@4.22.0
// Usage: node tools/inception_golden.mjs NODE_MODULES_DIR LAYERS_DIR > golden.json
//   LAYERS_DIR: model.json and shards, as tools/nsfwjs_unpack.mjs writes them.
// Inputs are synthetic images defined by goldenPixel (the same formula as
// tools/faceapi_golden.mjs), preprocessed as Keras' InceptionV3 expects (x / 127.5 - 1) and
// fed as raw NHWC floats, so no resizing enters the comparison.
import { createRequire } from 'module';
import fs from 'fs';
import path from 'path';

const [modulesArg, layersDir] = process.argv.slice(2);
if (!modulesArg || !layersDir) {
  console.error('usage: node tools/inception_golden.mjs NODE_MODULES_DIR LAYERS_DIR > golden.json');
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(modulesArg), 'noop.js'));
const tf = require('@tensorflow/tfjs');
await tf.setBackend('cpu');

function goldenPixel(s, y, x, c) {
  return 127.5 + 127.5 * Math.sin(0.031 * (s + 1) * x + 0.047 * y + 2.1 * c + 0.7 * s)
                       * Math.cos(0.023 * (c + 1) * y - 0.011 * s * x);
}
function image(s, side) {
  const values = new Float32Array(side * side * 3);
  for (let y = 0; y < side; ++y)
    for (let x = 0; x < side; ++x)
      for (let c = 0; c < 3; ++c) values[(y * side + x) * 3 + c] = goldenPixel(s, y, x, c) / 127.5 - 1;
  return tf.tensor4d(values, [1, side, side, 3]);
}

const document = JSON.parse(fs.readFileSync(path.join(layersDir, 'model.json'), 'utf8'));
const weightSpecs = document.weightsManifest.flatMap((group) => group.weights);
const data = Buffer.concat(document.weightsManifest.flatMap((group) => group.paths.map((p) => fs.readFileSync(path.join(layersDir, p)))));
const weightData = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
const model = await tf.loadLayersModel({ load: async () => ({ modelTopology: document.modelTopology, weightSpecs, weightData }) });
const pooled = tf.layers.globalAveragePooling2d({}).apply(model.getLayer('mixed10').output);
const features = tf.model({ inputs: model.inputs, outputs: pooled });
const golden = { source: 'nsfwjs@4.4.0 dist/models/inception_v3', tfjs: tf.version.tfjs, backend: tf.getBackend(), cases: [] };
for (const s of [0, 1]) {
  const input = image(s, 299);
  golden.cases.push({ image: s, side: 299, probabilities: Array.from(model.predict(input).dataSync()),
                      features: Array.from(features.predict(input).dataSync()) });
}
console.log(JSON.stringify(golden));
